//! The README's "Running with QEMU" recipe: complete and consistent by itself, and the order of
//! the primary's filters it insists on shown to matter with a real QEMU.

use std::time::Duration;

use colo_actors::Role;
use colo_protocols as _;
use colo_tests::frames::{Net, Udp, udp};
use colo_tests::qemu::binary;
use colo_tests::qemu::hosts::{QemuRole, Site, Wiring};
use colo_tests::qemu::readme::{Recipe, option_value, options};
use colo_tests::rig::Transport;

/// The chardevs a host's options declare, with the pipeline socket each one's port names.
fn chardev_roles(recipe: &Recipe, args: &[String]) -> Vec<(String, Role)> {
    options(args)
        .into_iter()
        .filter(|(o, _)| *o == "-chardev")
        .map(|(_, v)| {
            let id = option_value(v, "id").expect("a chardev id");
            let port: u16 = option_value(v, "port")
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("chardev {id} has no port"));
            let role = recipe
                .role_of_port(port)
                .unwrap_or_else(|| panic!("chardev {id}: port {port} is not in the configuration"));
            (id.to_string(), role)
        })
        .collect()
}

/// The filter-redirectors of a host's options: (id, `indev` or `outdev`, chardev).
fn redirectors(args: &[String]) -> Vec<(String, &'static str, String)> {
    options(args)
        .into_iter()
        .filter(|(o, v)| *o == "-object" && v.starts_with("filter-redirector,"))
        .map(|(_, v)| {
            let id = option_value(v, "id").expect("a filter id").to_string();
            assert_eq!(option_value(v, "queue"), Some("rx"), "{id}: queue=rx");
            match (option_value(v, "indev"), option_value(v, "outdev")) {
                (Some(c), None) => (id, "indev", c.to_string()),
                (None, Some(c)) => (id, "outdev", c.to_string()),
                _ => panic!("{id}: exactly one of indev and outdev"),
            }
        })
        .collect()
}

#[test]
fn the_recipe_is_complete_and_consistent() {
    let recipe = Recipe::load();
    recipe
        .pipeline
        .validate()
        .expect("the configuration block is a valid pipeline");
    assert!(!recipe.pipeline.vnet_hdr_support, "vnet is a variant");
    assert!(
        recipe.pipeline.notify_dev.is_some(),
        "the controller's port"
    );
    let primary = chardev_roles(&recipe, &recipe.primary_host);
    let secondary = chardev_roles(&recipe, &recipe.secondary_host);
    let roles = |c: &[(String, Role)]| c.iter().map(|(_, r)| *r).collect::<Vec<_>>();
    assert_eq!(roles(&primary), [Role::Outdev, Role::PrimaryIn]);
    assert_eq!(roles(&secondary), [Role::SecondaryIn]);
    let id_of = |c: &[(String, Role)], role| {
        c.iter()
            .find(|(_, r)| *r == role)
            .map(|(id, _)| id.clone())
            .expect("a chardev")
    };
    let out = id_of(&primary, Role::Outdev);
    let pin = id_of(&primary, Role::PrimaryIn);
    let sin = id_of(&secondary, Role::SecondaryIn);
    let p = redirectors(&recipe.primary_host);
    assert_eq!(
        p.iter()
            .map(|(_, dir, c)| (*dir, c.clone()))
            .collect::<Vec<_>>(),
        [("indev", out), ("outdev", pin)],
        "the primary injects released frames from outdev, declared first, and sends the \
         guest's frames to primary_in"
    );
    let s = redirectors(&recipe.secondary_host);
    assert_eq!(
        s.iter()
            .map(|(_, dir, c)| (*dir, c.clone()))
            .collect::<Vec<_>>(),
        [("outdev", sin)]
    );
    for args in [&recipe.primary_host, &recipe.secondary_host] {
        for (o, v) in options(args) {
            if o == "-chardev" {
                assert!(
                    option_value(v, "reconnect-ms").is_some(),
                    "{v}: QEMU dials with reconnect-ms, as the variants assume"
                );
            }
        }
    }
}

/// With the primary's two filters declared the other way round, a released frame does not
/// leave the host: QEMU hands it to the outdev filter, which sends it back to colo-compare.
#[test]
fn the_primary_filters_order_matters() {
    let Some(bin) = binary::require("the_primary_filters_order_matters") else {
        return;
    };
    let mut recipe = Recipe::load();
    let objects: Vec<usize> = recipe
        .primary_host
        .iter()
        .enumerate()
        .filter(|(_, a)| *a == "-object")
        .map(|(i, _)| i + 1)
        .collect();
    let [first, second] = objects[..] else {
        panic!("two filters on the primary host");
    };
    recipe.primary_host.swap(first, second);
    let wiring = Wiring::new(Transport::Unix, QemuRole::Dials, false);
    colo_tests::rig::run(async {
        let mut site = Site::start_with(&bin, wiring, recipe).await;
        let frame = udp(&Net::default(), &Udp::payload("loop"));
        site.primary.guest.send(&frame).await;
        site.secondary.guest.send(&frame).await;
        site.wait_until("the released frame back at primary_in", |c| {
            c.received[0] == 2 && c.released_total() == 1
        })
        .await;
        site.primary
            .world
            .expect_silence(Duration::from_millis(200))
            .await;
        let c = site.counters();
        assert_eq!(c.held[0], 1, "the looped frame waits for a secondary twin");
        site.shutdown(Duration::ZERO).await;
    });
}
