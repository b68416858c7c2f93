//! Real QEMU processes as colo-compare's peers and as its reference.
//!
//! - [`binary`]: which QEMU, its version, and the SKIPPED/CI policy when there is none.
//! - [`process`] and [`qmp`]: one QEMU process per use, in the test's temporary directory.
//! - [`readme`]: the README's "Running with QEMU" recipe, which the tests run verbatim.
//! - [`hosts`]: a primary and a secondary host QEMU with colo-compare between them.
//! - [`comparator`] and [`twin`]: QEMU's own colo-compare and colo-compare fed the same steps.

pub mod binary;
pub mod comparator;
pub mod hosts;
pub mod process;
pub mod qmp;
pub mod readme;
pub mod twin;
