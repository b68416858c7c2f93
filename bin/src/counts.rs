//! How the program prints counts by reason ("12 (checkpoint-flush 2, matched 10)"), the same
//! in `ctl stats` and in `replay`'s report, so that an operator comparing the two compares
//! like with like.

use std::collections::BTreeMap;
use std::fmt::Display;

/// The total, then each reason's count in the map's order; "0" when there is none.
pub fn counts<K: Display>(map: &BTreeMap<K, u64>) -> String {
    if map.is_empty() {
        return "0".into();
    }
    let total: u64 = map.values().sum();
    let parts: Vec<String> = map.iter().map(|(k, v)| format!("{k} {v}")).collect();
    format!("{total} ({})", parts.join(", "))
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn total_then_each_reason() {
        let mut m = BTreeMap::new();
        assert_eq!(counts::<&str>(&m), "0");
        m.insert("matched", 10);
        m.insert("checkpoint-flush", 2);
        assert_eq!(counts(&m), "12 (checkpoint-flush 2, matched 10)");
        let owned: BTreeMap<String, u64> = [("timeout".to_string(), 0)].into();
        assert_eq!(counts(&owned), "0 (timeout 0)");
    }
}
