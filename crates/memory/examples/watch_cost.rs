//! What a write watch costs a guest store (docs/monitor.md, `make bench`):
//! nanoseconds per 8-byte store through `GuestRam::store_off` to
//!
//! - an unmarked page (no monitor: the fast path every store takes),
//! - a watched page that stays watched (the monitor re-arms it before
//!   every store: each store takes the slow path, the worst case),
//!
//! and the cost of arming a watch. Prints one `name ns` line each.
//! Env: WATCH_STORES (default 20000000).

use std::time::Instant;

use strata_memory::GuestRam;

fn main() {
    let n: u64 = std::env::var("WATCH_STORES").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000_000);
    let ram = GuestRam::new(0x8000_0000, 1 << 20).expect("1 MiB of RAM");
    let per = |t: Instant| t.elapsed().as_nanos() as f64 / n as f64;

    let t = Instant::now();
    for i in 0..n {
        ram.store_off(((i * 8) & 0xff8) as usize, 8, i);
    }
    println!("store_unwatched_ns {:.2}", per(t));

    let t = Instant::now();
    for i in 0..n {
        ram.watch_page(1);
        ram.store_off(0x1000 + ((i * 8) & 0xff8) as usize, 8, i);
    }
    println!("store_watched_rearmed_ns {:.2}", per(t));

    let t = Instant::now();
    let mut g = 0u64;
    for _ in 0..n {
        g = g.wrapping_add(ram.watch_page(2) as u64);
    }
    println!("arm_ns {:.2} (sum {g})", per(t));
}
