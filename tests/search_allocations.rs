//! A search allocates nothing once its thread has run one: the query's unit
//! copy, its codes, the graph walk's heaps and visited marks, the candidates
//! and the top-K are all kept per thread, and the caller keeps the results.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use metricann::index::{Hit, Index, IndexConfig, Quantization};

/// The system allocator, counting this thread's allocations while armed.
struct Counting;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, size) }
    }
}

fn count() {
    // `try_with`: the thread-locals may be gone while a thread exits.
    let _ = ARMED.try_with(|armed| {
        if armed.get() {
            let _ = COUNT.try_with(|c| c.set(c.get() + 1));
        }
    });
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations made by `f` on this thread.
fn allocations(f: impl FnOnce()) -> usize {
    COUNT.with(|c| c.set(0));
    ARMED.with(|a| a.set(true));
    f();
    ARMED.with(|a| a.set(false));
    COUNT.with(|c| c.get())
}

fn vectors(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            (0..dim)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
                })
                .collect()
        })
        .collect()
}

#[test]
fn searching_a_built_index_allocates_nothing() {
    let dim = 32;
    for quantization in [Quantization::None, Quantization::Int8] {
        let config = IndexConfig {
            growing_capacity: 2000,
            quantization,
            ..IndexConfig::default()
        };
        let mut index = Index::new(dim, "alloc", config).unwrap();
        let base = vectors(4500, dim, 7);
        let ids: Vec<u64> = (0..base.len() as u64).collect();
        // Two sealed graphs, a growing segment and a tombstone: every part of
        // the search path.
        for range in [0..2100, 2100..4200, 4200..4500] {
            index.add(&ids[range.clone()], &base[range]).unwrap();
            index.maintain().unwrap();
        }
        index.remove(&[3]);
        assert!(index.segments().len() >= 3, "{:?}", index.segments());
        let queries = vectors(50, dim, 8);
        let mut out: Vec<Hit> = Vec::with_capacity(10);
        for ef in [10, 16, 64, 200] {
            // The first search at an ef sizes the thread's state for it.
            index
                .search_into(&queries[0], 10, Some(ef), &mut out)
                .unwrap();
            let made = allocations(|| {
                for q in &queries {
                    index.search_into(q, 10, Some(ef), &mut out).unwrap();
                }
            });
            assert_eq!(
                made, 0,
                "{quantization:?} at ef {ef}: {made} allocations in 50 searches"
            );
            assert_eq!(out.len(), 10);
        }
        // The counter counts: a search that returns a new Vec allocates it.
        assert!(allocations(|| drop(index.search(&queries[1], 10).unwrap())) >= 1);
    }
}
