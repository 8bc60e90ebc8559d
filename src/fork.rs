//! What a child process inherits: trims and `fork` exclude each other.
//!
//! After `fork` the child has one thread, the one that forked; whatever the
//! parent's other threads were doing inside the allocator stops there, half
//! done, in the child. Every such state is harmless, except one:
//!
//! - a pop, push, carve, slot claim or growth publication is one CAS, so
//!   the child sees it done or not done; blocks another thread had taken
//!   (its cache, a batch in flight) are simply not available in the child.
//!   A run another thread had popped but not yet emptied stays off the
//!   stack with its bits set, so its up to 64 blocks (and any the child
//!   frees into it) are not handed out again in the child: a bounded loss;
//! - a first-use initialisation in flight leaves a lazily built allocator
//!   `INITIALIZING` in the child, which then serves every request from the
//!   system allocator (`slab/lazy.rs`: nobody waits for it);
//! - **a trim in flight** has detached a class's free blocks and marked the
//!   class as being trimmed; a request that finds the class dry waits for
//!   the trim to push them back (`ClassPool::retry_while_trimmed`). In the
//!   child nobody would: the wait would never end.
//!
//! So the child must never inherit a trim in flight. A `pthread_atfork`
//! prepare handler raises a fork count and waits until no trim is in
//! flight; a trim announces itself ([`TrimPass::enter`]) and, if a fork is
//! being prepared, steps back and waits for it to finish. The parent and
//! child handlers lower the count again (the child to zero: it has no other
//! thread). Both waits are on a running thread's bounded work (a trim of one
//! class, or a fork), so the only wait in the allocator — the dry path's,
//! for a trim — is always on a trim that a live thread of this process is
//! finishing.
//!
//! The handlers are registered by the first trim; before it no trim can be
//! in flight. If they cannot be registered (libc out of memory), trims do
//! nothing rather than risk a child that hangs. Under loom there is no fork
//! and no gate.

#[cfg(not(lockfree_slab_loom))]
use crate::sync::{AtomicUsize, Ordering};

#[cfg(not(lockfree_slab_loom))]
/// Forks being prepared (their prepare handler has run, their parent
/// handler not yet).
static FORKS: AtomicUsize = AtomicUsize::new(0);
#[cfg(not(lockfree_slab_loom))]
/// Trims in flight (between [`TrimPass::enter`] and its drop).
static TRIMS: AtomicUsize = AtomicUsize::new(0);

/// Permission to trim: while one exists, no fork completes its prepare
/// step, so no child inherits the trim.
pub(crate) struct TrimPass(());

#[cfg(not(lockfree_slab_loom))]
impl TrimPass {
    /// Waits out a fork being prepared, then announces a trim. `None` if the
    /// fork handlers could not be registered: do not trim.
    pub(crate) fn enter() -> Option<TrimPass> {
        if !handlers_registered() {
            return None;
        }
        loop {
            // SeqCst here and in `prepare`: of a trim that announces itself
            // and then looks for forks, and a fork that announces itself and
            // then looks for trims, at least one sees the other (a store and
            // a load on each side need a single total order).
            TRIMS.fetch_add(1, Ordering::SeqCst);
            if FORKS.load(Ordering::SeqCst) == 0 {
                return Some(TrimPass(()));
            }
            // A fork is being prepared and is waiting for trims: step back.
            TRIMS.fetch_sub(1, Ordering::SeqCst);
            while FORKS.load(Ordering::SeqCst) != 0 {
                std::thread::yield_now();
            }
        }
    }
}

#[cfg(not(lockfree_slab_loom))]
impl Drop for TrimPass {
    fn drop(&mut self) {
        // Release: a fork that sees the trim gone also sees its push-backs
        // (pairs with the Acquire load in `prepare`).
        TRIMS.fetch_sub(1, Ordering::Release);
    }
}

#[cfg(not(lockfree_slab_loom))]
extern "C" fn prepare() {
    FORKS.fetch_add(1, Ordering::SeqCst);
    // SeqCst: see `enter`; also Acquire, pairing with a finished trim's
    // Release, so the child inherits its pushed-back blocks.
    while TRIMS.load(Ordering::SeqCst) != 0 {
        std::thread::yield_now();
    }
}

#[cfg(not(lockfree_slab_loom))]
extern "C" fn parent() {
    // Relaxed: trims only wait for the count to reach zero; the fork wrote
    // nothing they read.
    FORKS.fetch_sub(1, Ordering::Relaxed);
}

#[cfg(not(lockfree_slab_loom))]
extern "C" fn child() {
    // The child's only thread is the one that forked: no fork is being
    // prepared any more, whatever other parent threads were doing.
    FORKS.store(0, Ordering::Relaxed);
}

#[cfg(not(lockfree_slab_loom))]
/// Registers the handlers once per process; whether that succeeded.
fn handlers_registered() -> bool {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *REGISTERED.get_or_init(|| crate::os::at_fork(prepare, parent, child))
}

/// Loom models have no fork: every trim may go.
#[cfg(lockfree_slab_loom)]
impl TrimPass {
    pub(crate) fn enter() -> Option<TrimPass> {
        Some(TrimPass(()))
    }
}
