//! Per-isolate memory: a counting ArrayBuffer allocator (buffers live outside the V8 heap), a
//! near-heap-limit callback that gives V8 a little room and ends the JS instead of letting V8
//! abort the process, and the pressure levels that decide what a worker does after a request.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::cpu::{LimitKind, Tripwire};

pub const MIB: usize = 1024 * 1024;

/// How full an isolate is: (heap used + external) / limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Pressure {
    /// Under 70%.
    Normal,
    /// 70-85%: collect garbage after the request.
    Warning,
    /// 85-95%: finish what is in flight, then replace the isolate.
    Critical,
    /// Over 95%: end the JS now.
    Emergency,
}

impl Pressure {
    pub fn of(used: usize, limit: usize) -> Self {
        let percent = used.saturating_mul(100) / limit.max(1);
        match percent {
            0..70 => Pressure::Normal,
            70..85 => Pressure::Warning,
            85..=95 => Pressure::Critical,
            _ => Pressure::Emergency,
        }
    }

    pub fn as_number(self) -> u8 {
        self as u8
    }

    pub fn from_number(value: u8) -> Self {
        match value {
            0 => Pressure::Normal,
            1 => Pressure::Warning,
            2 => Pressure::Critical,
            _ => Pressure::Emergency,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Pressure::Normal => "normal",
            Pressure::Warning => "warning",
            Pressure::Critical => "critical",
            Pressure::Emergency => "emergency",
        }
    }
}

/// The memory budget of one isolate, shared with V8's allocator and heap callbacks.
pub struct Budget {
    pub limit: usize,
    external: AtomicUsize,
    /// Largest external total seen (for reports of what was used).
    peak_external: AtomicUsize,
    /// Set once the isolate (and so its worker clock) exists.
    tripwire: OnceLock<Tripwire>,
    /// Bytes asked for by the allocation that broke the budget, or by the heap at its limit.
    pub refused: AtomicUsize,
}

impl Budget {
    pub fn new(limit_mb: u32) -> Self {
        Self {
            limit: limit_mb as usize * MIB,
            external: AtomicUsize::new(0),
            peak_external: AtomicUsize::new(0),
            tripwire: OnceLock::new(),
            refused: AtomicUsize::new(0),
        }
    }

    pub fn arm(&self, tripwire: Tripwire) {
        let _ = self.tripwire.set(tripwire);
    }

    pub fn external(&self) -> usize {
        self.external.load(Ordering::Relaxed)
    }

    /// An ArrayBuffer's memory (asked for where V8 may collect garbage) broke the budget.
    fn exceeded(&self, asked: usize) {
        self.refused.store(asked, Ordering::Relaxed);
        if let Some(tripwire) = self.tripwire.get() {
            tripwire.trip_at_allocation(LimitKind::Memory);
        }
    }

    /// The heap reached its limit (inside a garbage collection).
    fn heap_exceeded(&self, limit: usize) {
        self.refused.store(limit, Ordering::Relaxed);
        if let Some(tripwire) = self.tripwire.get() {
            tripwire.trip_in_collection(LimitKind::Memory);
        }
    }

    /// Reserves `len` external bytes if they fit; if not, reserves nothing and returns the total
    /// that was asked for.
    fn try_reserve(&self, len: usize) -> Result<(), usize> {
        let total = self
            .external
            .fetch_add(len, Ordering::AcqRel)
            .saturating_add(len);
        if total > self.limit {
            self.release(len);
            return Err(total);
        }
        self.peak_external.fetch_max(total, Ordering::Relaxed);
        Ok(())
    }

    /// Reserves `len` external bytes; false (and the JS is ended) when over budget.
    fn reserve(&self, len: usize) -> bool {
        self.try_reserve(len)
            .map_err(|total| self.exceeded(total))
            .is_ok()
    }

    /// Holds `len` bytes made outside V8 on the isolate's behalf (a subrequest's body while it
    /// is read), or `None` when they do not fit; unlike an allocation by JS, a refusal does not
    /// end the JS (the caller fails the operation with its own message).
    pub fn hold(self: &std::sync::Arc<Self>, len: usize) -> Option<Held> {
        let mut held = Held {
            budget: self.clone(),
            len: 0,
        };
        held.grow(len).then_some(held)
    }

    /// Gives back `len` bytes reserved with [`Budget::reserve`].
    fn release(&self, len: usize) {
        self.external.fetch_sub(len, Ordering::AcqRel);
    }
}

/// Bytes counted in an isolate's budget until dropped (see [`Budget::hold`]).
pub struct Held {
    budget: std::sync::Arc<Budget>,
    len: usize,
}

impl Held {
    /// Holds `more` bytes too; false (nothing more held) when they do not fit.
    pub fn grow(&mut self, more: usize) -> bool {
        let fits = self.budget.try_reserve(more).is_ok();
        if fits {
            self.len += more;
        }
        fits
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.budget.release(self.len);
    }
}

unsafe extern "C" fn allocate(budget: &Budget, len: usize) -> *mut libc::c_void {
    if !budget.reserve(len) {
        return std::ptr::null_mut();
    }
    // SAFETY: calloc with a non-overflowing size; null is handled by V8 as a failed allocation.
    let ptr = unsafe { libc::calloc(len.max(1), 1) };
    if ptr.is_null() {
        budget.release(len);
    }
    ptr
}

unsafe extern "C" fn allocate_uninitialized(budget: &Budget, len: usize) -> *mut libc::c_void {
    if !budget.reserve(len) {
        return std::ptr::null_mut();
    }
    // SAFETY: as above; V8 initialises the memory itself.
    let ptr = unsafe { libc::malloc(len.max(1)) };
    if ptr.is_null() {
        budget.release(len);
    }
    ptr
}

unsafe extern "C" fn free(budget: &Budget, data: *mut libc::c_void, len: usize) {
    budget.release(len);
    // SAFETY: `data` came from calloc/malloc above (V8 frees only what this allocator gave).
    unsafe { libc::free(data) };
}

unsafe extern "C" fn drop_budget(budget: *const Budget) {
    // SAFETY: the pointer came from Arc::into_raw in `allocator` and is released once, here.
    unsafe { drop(std::sync::Arc::from_raw(budget)) };
}

static VTABLE: v8::RustAllocatorVtable<Budget> = v8::RustAllocatorVtable {
    allocate,
    allocate_uninitialized,
    free,
    drop: drop_budget,
};

/// An ArrayBuffer allocator that counts against `budget` and refuses (ending the JS) beyond it.
pub fn allocator(budget: &std::sync::Arc<Budget>) -> v8::UniqueRef<v8::Allocator> {
    let raw = std::sync::Arc::into_raw(budget.clone());
    // SAFETY: `raw` stays valid until V8 calls `drop_budget`; the vtable is 'static.
    unsafe { v8::new_rust_allocator(raw, &VTABLE) }
}

/// A backing store for bytes made natively (by an op), charged to `budget` like a buffer from
/// the counting allocator and released when V8 frees it. `None` when the bytes do not fit the
/// budget: the limit has then tripped and the request's JS is being ended.
pub fn charged_backing_store(
    budget: &std::sync::Arc<Budget>,
    bytes: Vec<u8>,
) -> Option<v8::UniqueRef<v8::BackingStore>> {
    let len = bytes.len();
    if !budget.reserve(len) {
        return None;
    }
    let data = Box::into_raw(bytes.into_boxed_slice()) as *mut u8;
    let owner = std::sync::Arc::into_raw(budget.clone());
    // SAFETY: `data` is a boxed slice of `len` bytes that V8 now owns until it calls
    // `release_charged` once, which rebuilds the box and drops the Arc leaked for it.
    Some(unsafe {
        v8::ArrayBuffer::new_backing_store_from_ptr(
            data.cast(),
            len,
            release_charged,
            owner as *mut libc::c_void,
        )
    })
}

unsafe extern "C" fn release_charged(
    data: *mut libc::c_void,
    len: usize,
    owner: *mut libc::c_void,
) {
    // SAFETY: the pointers come from `charged_backing_store`, and V8 calls this once per store.
    let (bytes, budget) = unsafe {
        (
            Box::from_raw(std::ptr::slice_from_raw_parts_mut(data.cast::<u8>(), len)),
            std::sync::Arc::from_raw(owner as *const Budget),
        )
    };
    drop(bytes);
    budget.release(len);
}

/// Room given to V8 past the limit so it can unwind after the termination request instead of
/// running out of heap (which is fatal to the whole process). The allocation that hit the limit
/// may be a single object of up to ~1 GiB (V8's longest string or array), and some builtins (a
/// huge `Array.prototype.fill`, `JSON.parse`) only notice the termination when they return, so
/// the room must fit that: returning too little aborts the process. The isolate is replaced
/// after such a request, so the room is lent only until the termination lands.
fn headroom(current: usize) -> usize {
    current.max(1024 * MIB)
}

/// Near-heap-limit callback: never let V8 hit a fatal OOM. Ends the JS and lends headroom.
///
/// # Safety
///
/// `data` must point at the isolate's [`Budget`], alive for as long as the isolate.
pub unsafe extern "C" fn near_heap_limit(
    data: *mut libc::c_void,
    current_heap_limit: usize,
    _initial_heap_limit: usize,
) -> usize {
    // SAFETY: `data` is the Budget registered with the callback, alive as long as the isolate.
    let budget = unsafe { &*(data as *const Budget) };
    budget.heap_exceeded(current_heap_limit);
    current_heap_limit + headroom(current_heap_limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pressure_levels_follow_the_thresholds() {
        let limit = 100;
        for (used, want) in [
            (0, Pressure::Normal),
            (69, Pressure::Normal),
            (70, Pressure::Warning),
            (84, Pressure::Warning),
            (85, Pressure::Critical),
            (95, Pressure::Critical),
            (96, Pressure::Emergency),
            (500, Pressure::Emergency),
        ] {
            assert_eq!(Pressure::of(used, limit), want, "{used}%");
        }
    }

    #[test]
    fn budget_refuses_beyond_the_limit_and_frees() {
        let budget = Budget::new(1);
        assert!(budget.reserve(MIB / 2));
        assert!(!budget.reserve(MIB), "over the limit");
        assert_eq!(budget.external(), MIB / 2, "a refusal reserves nothing");
        assert_eq!(budget.refused.load(Ordering::Relaxed), MIB / 2 + MIB);
        budget.release(MIB / 2);
        assert!(budget.reserve(MIB));
    }
}
