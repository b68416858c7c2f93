//! Helpers for colo-compare whole-program tests.
