//! zs runtime
