//! Keeping data that different threads write apart, so they do not invalidate each
//! other's cache lines (false sharing). 128 bytes covers adjacent-line prefetching.

use std::ops::Deref;

/// `T` alone on its cache line(s).
#[derive(Default, Debug)]
#[repr(align(128))]
pub struct CacheLine<T>(pub T);

impl<T> Deref for CacheLine<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}
