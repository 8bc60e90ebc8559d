// Own test binary: it lowers RLIMIT_AS, which limits the whole process.
//! `mmap` failure is a typed error, not a panic: with the process's address
//! space limited (RLIMIT_AS), building a pool that does not fit answers
//! `ConfigError::ReserveFailed` with a message that says what to change.
//!
//! Its own test binary, because the limit applies to the whole process.
//! (Not run under ThreadSanitizer, whose shadow memory needs the address
//! space.)

use lockfree_slab::{ConfigError, SlabAllocator};

/// Limits this process's address space to 16 GiB: room for the test
/// harness, none for a 64 GiB reservation. Both tests set the same limit;
/// whichever runs first does it.
#[cfg(target_os = "linux")]
fn limit_address_space() {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        assert_eq!(libc::getrlimit(libc::RLIMIT_AS, &mut limit), 0);
        let cap: libc::rlim_t = 16 << 30;
        limit.rlim_cur = if limit.rlim_max == libc::RLIM_INFINITY { cap } else { limit.rlim_max.min(cap) };
        assert_eq!(libc::setrlimit(libc::RLIMIT_AS, &limit), 0);
    }
}

#[test]
#[cfg(target_os = "linux")]
fn a_refused_reservation_is_a_config_error() {
    limit_address_space();
    let err = SlabAllocator::builder().size_classes(&[64]).capacity(64 << 30).build().unwrap_err();
    match err {
        ConfigError::ReserveFailed { bytes, errno } => {
            assert!(bytes >= 64 << 30);
            assert_eq!(errno, libc::ENOMEM);
        }
        other => panic!("expected ReserveFailed, got {other:?}"),
    }
    assert!(err.to_string().contains("lower `capacity`"), "{err}");
    // A pool that fits still builds.
    SlabAllocator::builder().size_classes(&[64]).capacity(1 << 20).build().expect("a small pool fits");
}

#[test]
#[cfg(target_os = "linux")]
fn a_refused_arena_reservation_is_an_arena_error() {
    use lockfree_slab::{Arena, ArenaError};
    limit_address_space();
    let err = Arena::new(64 << 30).unwrap_err();
    assert_eq!(err, ArenaError::ReserveFailed { bytes: 64 << 30, errno: libc::ENOMEM });
    assert!(err.to_string().contains("ulimit -v"), "{err}");
    Arena::new(1 << 20).expect("a small arena fits");
}
