//! The seed tutorial's programs as workloads: an order book of std
//! `HashMap`/`BTreeMap`/`Vec` with `String` fields, a market-data fan-out
//! of `Vec<u8>` messages over std channels, and a trading loop of boxed
//! events. They are plain std code, allocating through the global
//! allocator, so each contestant runs them in a child process whose global
//! allocator it is ([`crate::global`]): the hidden `--seed-cell` mode,
//! started with [`crate::global::ENV`] naming the contestant. The child
//! runs the workload once untimed (warm-up), once timed, and prints the
//! time, a checksum of what the program computed (the same under every
//! allocator) and its peak RSS.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hint::black_box;
use std::process::{Command, Stdio};
use std::sync::mpsc::sync_channel;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use crate::global::{self, Target};
use crate::measure::status_kib;
use crate::workloads::{Info, Plan, Runner, Sample};

/// Live orders the order book holds on average (between half and twice).
pub const BOOK_DEPTH: usize = 50_000;

/// Messages each market-data channel holds at most: the publisher waits
/// for a slow subscriber, so the peak is the allocator's, not the
/// scheduler's.
pub const CHANNEL_DEPTH: usize = 512;

/// Events the trading loop keeps queued before handling the oldest.
pub const EVENT_QUEUE: usize = 256;

/// Pending orders the trading loop keeps at most.
pub const PENDING: usize = 4096;

/// The seed workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `seed/order-book`.
    OrderBook,
    /// `seed/market-data`.
    MarketData,
    /// `seed/trading`.
    Trading,
}

impl Kind {
    /// Every seed workload, in report order.
    pub const ALL: [Kind; 3] = [Kind::OrderBook, Kind::MarketData, Kind::Trading];

    /// The workload id.
    pub fn id(self) -> &'static str {
        match self {
            Kind::OrderBook => "seed/order-book",
            Kind::MarketData => "seed/market-data",
            Kind::Trading => "seed/trading",
        }
    }

    /// The seed workload of id `id`.
    pub fn of(id: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.id() == id)
    }

    /// The thread counts it runs at: the plan's subscriber counts for the
    /// fan-out, one thread for the others.
    pub fn threads(self, plan: &Plan) -> Vec<usize> {
        match self {
            Kind::MarketData => plan.threads.clone(),
            Kind::OrderBook | Kind::Trading => vec![1],
        }
    }

    /// Runs `n` units at `threads` threads on this process's global
    /// allocator.
    pub fn run(self, threads: usize, n: u64) -> Outcome {
        match self {
            Kind::OrderBook => order_book(n),
            Kind::MarketData => market_data(threads, n),
            Kind::Trading => trading(n),
        }
    }
}

/// What one run of a seed workload did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Units done.
    pub ops: u64,
    /// Wall time of the timed part.
    pub elapsed: Duration,
    /// A digest of what the program computed, independent of the allocator
    /// and of thread timing.
    pub checksum: u64,
}

/// The seed workloads' descriptions (none but on Linux, where the child
/// reads its peak RSS from `/proc/self/status`).
pub fn infos() -> Vec<Info> {
    if !cfg!(target_os = "linux") {
        return Vec::new();
    }
    let info = |k: Kind, unit: &str, about: String| Info {
        id: k.id().into(),
        unit: unit.into(),
        about,
    };
    vec![
        info(
            Kind::OrderBook,
            "add, cancel or market order",
            format!(
                "the seed tutorial's order book on one thread, run with the contestant as the \
                 global allocator: a std HashMap<u64, Order> of about {BOOK_DEPTH} orders, each \
                 with String id, symbol and client, {PRICES} price levels per side as \
                 BTreeMap<price, Vec<order id>>; a random stream adds limit orders, cancels them and sends market \
                 orders that fill from the best levels (a String trade id per fill)"
            ),
        ),
        info(
            Kind::MarketData,
            "message delivered",
            format!(
                "the seed tutorial's market-data fan-out, run with the contestant as the global \
                 allocator: a publisher sends each message (a Vec<u8> of 64-512 B) to every \
                 subscriber thread (threads = subscribers) over its own std mpsc sync_channel of \
                 {CHANNEL_DEPTH}; subscribers read and drop them (remote frees)"
            ),
        ),
        info(
            Kind::Trading,
            "event",
            format!(
                "the seed tutorial's trading loop on one thread, run with the contestant as the \
                 global allocator: Box<dyn Event> events (ticks, acks, fills, news; two or three \
                 Strings each) queue up to {EVENT_QUEUE} deep; handling them places, fills and \
                 cancels orders in a Vec of up to {PENDING} pending orders (a String id each)"
            ),
        ),
    ]
}

/// A runner of workload `k` in this process, on its global allocator
/// (the system allocator unless [`global::ENV`] says otherwise): what the
/// parent sizes the children's work with.
pub fn runner(k: Kind, threads: usize) -> Runner {
    Runner {
        run: Box::new(move |n| {
            let o = k.run(threads, n);
            Sample {
                ops: o.ops,
                elapsed: o.elapsed,
            }
        }),
        latency: None,
    }
}

fn rng(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

// ---------------------------------------------------------------------------
// Order book
// ---------------------------------------------------------------------------

/// Price levels per side.
const PRICES: u64 = 1024;

const SYMBOLS: [&str; 8] = [
    "AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "META", "TSLA", "BRK.B",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Buy,
    Sell,
}

struct Order {
    id: String,
    symbol: String,
    client: String,
    side: Side,
    price: u64,
    qty: u64,
    /// Index of the order's id in `Book::live`.
    slot: usize,
}

/// The seed tutorial's order book.
pub(crate) struct Book {
    /// Live orders it holds on average (between half and twice).
    depth: usize,
    orders: HashMap<u64, Order>,
    bids: BTreeMap<u64, Vec<u64>>,
    asks: BTreeMap<u64, Vec<u64>>,
    /// Ids of the live orders, for picking one at random.
    live: Vec<u64>,
    next: u64,
}

impl Book {
    /// An empty book of `depth` orders on average.
    pub(crate) fn new(depth: usize) -> Book {
        Book {
            depth,
            orders: HashMap::new(),
            bids: BTreeMap::new(),
            asks: BTreeMap::new(),
            live: Vec::new(),
            next: 0,
        }
    }

    fn levels(&mut self, side: Side) -> &mut BTreeMap<u64, Vec<u64>> {
        match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        }
    }

    fn add(&mut self, r: u64) {
        let side = if r & 2 == 0 { Side::Buy } else { Side::Sell };
        // Bids at or below 10_000, asks above: the book never crosses.
        let offset = (r >> 8) % PRICES;
        let price = match side {
            Side::Buy => 10_000 - offset,
            Side::Sell => 10_001 + offset,
        };
        let id = self.next;
        self.next += 1;
        let order = Order {
            id: format!("ORD-{id:010}"),
            symbol: SYMBOLS[(r >> 16) as usize % SYMBOLS.len()].to_string(),
            client: format!("client-{}", (r >> 20) % 1000),
            side,
            price,
            qty: 1 + (r >> 32) % 100,
            slot: self.live.len(),
        };
        self.levels(side).entry(price).or_default().push(id);
        self.orders.insert(id, order);
        self.live.push(id);
    }

    /// Takes order `id` out of the map and of `live` (not of its level).
    fn take(&mut self, id: u64) -> Order {
        let o = self.orders.remove(&id).expect("a live order");
        self.live.swap_remove(o.slot);
        if let Some(&moved) = self.live.get(o.slot) {
            self.orders.get_mut(&moved).expect("a live order").slot = o.slot;
        }
        o
    }

    fn cancel(&mut self, r: u64) -> u64 {
        let id = self.live[(r >> 8) as usize % self.live.len()];
        let o = self.take(id);
        let levels = self.levels(o.side);
        let level = levels.get_mut(&o.price).expect("the order's level");
        let at = level.iter().position(|&x| x == id).expect("on its level");
        level.remove(at);
        if level.is_empty() {
            levels.remove(&o.price);
        }
        o.qty + o.id.len() as u64 + o.client.len() as u64
    }

    /// A market order of `qty` against the best levels of the other side;
    /// returns a digest of the fills.
    fn market(&mut self, r: u64) -> u64 {
        let side = if r & 2 == 0 { Side::Sell } else { Side::Buy };
        let mut qty = 1 + (r >> 8) % 250;
        let mut digest = 0u64;
        while qty > 0 {
            let levels = self.levels(side);
            let best = match side {
                Side::Buy => levels.last_key_value(),
                Side::Sell => levels.first_key_value(),
            };
            let Some((&price, ids)) = best else { break };
            let id = ids[0];
            let o = self.orders.get_mut(&id).expect("a live order");
            let fill = qty.min(o.qty);
            o.qty -= fill;
            qty -= fill;
            let trade = format!("T{}-{}-{}@{}", o.id, o.symbol, fill, price);
            digest = digest
                .wrapping_mul(31)
                .wrapping_add(trade.len() as u64 + fill * price);
            if o.qty == 0 {
                self.take(id);
                let levels = self.levels(side);
                let level = levels.get_mut(&price).expect("the best level");
                level.remove(0);
                if level.is_empty() {
                    levels.remove(&price);
                }
            }
        }
        digest
    }

    /// One operation of the random stream: adds, cancels or fills orders.
    pub(crate) fn step(&mut self, r: u64) -> u64 {
        let n = self.live.len();
        if n < self.depth / 2 || (r % 4 < 2 && n < 2 * self.depth) {
            self.add(r);
            0
        } else if r % 4 == 2 {
            self.cancel(r)
        } else {
            self.market(r)
        }
    }
}

#[cfg(test)]
impl Book {
    /// Panics unless the map, the levels and `live` describe the same
    /// orders and the book is not crossed; returns the live orders.
    pub(crate) fn check(&self) -> usize {
        let mut on_levels = 0;
        for (side, levels) in [(Side::Buy, &self.bids), (Side::Sell, &self.asks)] {
            for (&price, ids) in levels {
                assert!(!ids.is_empty(), "an empty level at {price}");
                for id in ids {
                    let o = &self.orders[id];
                    assert!(o.side == side && o.price == price && o.qty > 0);
                    assert_eq!(self.live[o.slot], *id);
                    assert!(o.id.ends_with(&format!("{id:010}")) && !o.symbol.is_empty());
                    assert!(o.client.starts_with("client-"));
                }
                on_levels += ids.len();
            }
        }
        assert_eq!(on_levels, self.orders.len());
        assert_eq!(self.live.len(), self.orders.len());
        if let (Some(bid), Some(ask)) = (self.bids.last_key_value(), self.asks.first_key_value()) {
            assert!(bid.0 < ask.0, "crossed: bid {} ask {}", bid.0, ask.0);
        }
        self.orders.len()
    }
}

/// Fills a book to its depth (untimed), then runs `n` random operations.
fn order_book(n: u64) -> Outcome {
    let mut book = Book::new(BOOK_DEPTH);
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..BOOK_DEPTH {
        book.add(rng(&mut seed));
    }
    let t = Instant::now();
    let mut sum = 0u64;
    for _ in 0..n {
        sum = sum.wrapping_add(book.step(rng(&mut seed)));
    }
    let elapsed = t.elapsed();
    let checksum = sum ^ (book.orders.len() as u64) << 40 ^ book.next;
    drop(black_box(book));
    Outcome {
        ops: n,
        elapsed,
        checksum,
    }
}

// ---------------------------------------------------------------------------
// Market data
// ---------------------------------------------------------------------------

/// Publishes `n` messages, each to all `subscribers`; a unit is a message
/// delivered.
fn market_data(subscribers: usize, n: u64) -> Outcome {
    let go = Barrier::new(subscribers + 1);
    let (elapsed, checksum) = thread::scope(|s| {
        let mut txs = Vec::with_capacity(subscribers);
        let mut subs = Vec::with_capacity(subscribers);
        for _ in 0..subscribers {
            let (tx, rx) = sync_channel::<Vec<u8>>(CHANNEL_DEPTH);
            txs.push(tx);
            let go = &go;
            subs.push(s.spawn(move || {
                go.wait();
                let mut sum = 0u64;
                while let Ok(m) = rx.recv() {
                    let seq = u64::from_le_bytes(m[..8].try_into().expect("8 bytes"));
                    sum = sum.wrapping_add(seq ^ m.len() as u64 ^ u64::from(m[m.len() - 1]));
                }
                sum
            }));
        }
        go.wait();
        let t = Instant::now();
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for seq in 0..n {
            let r = rng(&mut seed);
            let len = 64 + (r % 449) as usize;
            let mut m = vec![r as u8; len];
            m[..8].copy_from_slice(&seq.to_le_bytes());
            for tx in &txs[1..] {
                tx.send(m.clone()).expect("subscriber alive");
            }
            txs[0].send(m).expect("subscriber alive");
        }
        drop(txs);
        let sum = subs
            .into_iter()
            .map(|h| h.join().expect("subscriber"))
            .fold(0u64, u64::wrapping_add);
        (t.elapsed(), sum)
    });
    Outcome {
        ops: n * subscribers as u64,
        elapsed,
        checksum,
    }
}

// ---------------------------------------------------------------------------
// Trading loop
// ---------------------------------------------------------------------------

struct Pending {
    id: String,
    symbol: String,
    price: u64,
    qty: u64,
}

/// The strategy's state.
#[derive(Default)]
struct Desk {
    pending: Vec<Pending>,
    position: i64,
    digest: u64,
    next: u64,
}

impl Desk {
    fn note(&mut self, x: u64) {
        self.digest = self.digest.wrapping_mul(0x100_0000_01b3).wrapping_add(x);
    }
}

/// An event of the trading loop.
trait Event {
    fn handle(&self, d: &mut Desk);
}

struct Tick {
    symbol: String,
    venue: String,
    bid: u64,
    ask: u64,
}

struct Ack {
    order: usize,
    text: String,
    venue: String,
}

struct Fill {
    order: usize,
    exec_id: String,
    qty: u64,
}

struct News {
    headline: String,
    source: String,
    symbol: String,
}

impl Event for Tick {
    fn handle(&self, d: &mut Desk) {
        d.note(self.bid + self.ask + self.venue.len() as u64);
        if (self.bid ^ self.ask).is_multiple_of(3) {
            if d.pending.len() == PENDING {
                // An order is cancelled to make room.
                let old = d.pending.swap_remove(self.ask as usize % PENDING);
                d.note(old.qty + old.id.len() as u64);
            }
            d.next += 1;
            d.pending.push(Pending {
                id: format!("{}-{:08}", self.symbol, d.next),
                symbol: self.symbol.clone(),
                price: self.bid,
                qty: 1 + self.ask % 50,
            });
        }
    }
}

impl Event for Ack {
    fn handle(&self, d: &mut Desk) {
        let x = d
            .pending
            .get(self.order % d.pending.len().max(1))
            .map_or(0, |p| p.price + p.id.len() as u64);
        d.note(x + self.text.len() as u64 + self.venue.len() as u64);
    }
}

impl Event for Fill {
    fn handle(&self, d: &mut Desk) {
        if d.pending.is_empty() {
            return;
        }
        let i = self.order % d.pending.len();
        let p = &mut d.pending[i];
        let q = self.qty.min(p.qty);
        p.qty -= q;
        d.position += q as i64;
        let x = q * p.price + p.symbol.len() as u64 + self.exec_id.len() as u64;
        if p.qty == 0 {
            d.pending.swap_remove(i);
        }
        d.note(x);
    }
}

impl Event for News {
    fn handle(&self, d: &mut Desk) {
        let hits = d
            .pending
            .iter()
            .rev()
            .take(8)
            .filter(|p| p.symbol == self.symbol)
            .count();
        d.note(hits as u64 + self.headline.len() as u64 + self.source.len() as u64);
    }
}

const VENUES: [&str; 4] = ["XNAS", "XNYS", "BATS", "IEXG"];

fn event(r: u64) -> Box<dyn Event> {
    let symbol = SYMBOLS[(r >> 8) as usize % SYMBOLS.len()];
    let venue = VENUES[(r >> 12) as usize % VENUES.len()];
    match r % 8 {
        0..=3 => Box::new(Tick {
            symbol: symbol.to_string(),
            venue: venue.to_string(),
            bid: 10_000 + (r >> 16) % 500,
            ask: 10_500 + (r >> 24) % 500,
        }),
        4 | 5 => Box::new(Ack {
            order: (r >> 16) as usize,
            text: format!("accepted by {venue} at seq {}", (r >> 32) % 100_000),
            venue: venue.to_string(),
        }),
        6 => Box::new(Fill {
            order: (r >> 16) as usize,
            exec_id: format!("EX{:012x}", r >> 20),
            qty: 1 + (r >> 40) % 40,
        }),
        _ => Box::new(News {
            headline: format!(
                "{symbol} {} guidance after {} quarter",
                ["raises", "cuts", "keeps"][(r >> 16) as usize % 3],
                ["a strong", "a weak", "an even"][(r >> 20) as usize % 3]
            ),
            source: venue.to_lowercase(),
            symbol: symbol.to_string(),
        }),
    }
}

/// Makes `n` events, queueing each and handling the oldest once the queue
/// is full.
fn trading(n: u64) -> Outcome {
    let mut desk = Desk::default();
    let mut queue: VecDeque<Box<dyn Event>> = VecDeque::new();
    let mut seed = 0x5851_f42d_4c95_7f2d_u64;
    let t = Instant::now();
    for _ in 0..n {
        queue.push_back(event(rng(&mut seed)));
        if queue.len() > EVENT_QUEUE {
            let e = queue.pop_front().expect("a queued event");
            e.handle(&mut desk);
        }
    }
    while let Some(e) = queue.pop_front() {
        e.handle(&mut desk);
    }
    let elapsed = t.elapsed();
    let checksum = desk.digest ^ (desk.position as u64) << 32 ^ desk.pending.len() as u64;
    drop(black_box(desk));
    Outcome {
        ops: n,
        elapsed,
        checksum,
    }
}

// ---------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------

/// What a child printed: its allocator, the timed run and its peak RSS.
#[derive(Clone, Debug, PartialEq)]
pub struct ChildRun {
    /// The global allocator the child ran on.
    pub target: Target,
    /// The timed run.
    pub outcome: Outcome,
    /// The child's VmHWM before the warm-up, KiB.
    pub start_kib: u64,
    /// The child's VmHWM after the timed run, KiB.
    pub peak_kib: u64,
}

/// The line a child prints, after its marker `@seed `.
fn line(r: &ChildRun) -> String {
    format!(
        "@seed {} {} {} {} {} {}",
        r.target.name(),
        r.outcome.ops,
        r.outcome.elapsed.as_nanos(),
        r.outcome.checksum,
        r.start_kib,
        r.peak_kib
    )
}

/// Parses what [`line`] wrote (anywhere in `l`: a test harness may have
/// begun the line).
fn parse_line(l: &str) -> Option<ChildRun> {
    let mut w = l[l.find("@seed ")? + 6..].split_whitespace();
    let target = Target::of(w.next()?.as_bytes())?;
    let mut num = || w.next()?.parse::<u64>().ok();
    let (ops, ns, checksum, start_kib, peak_kib) = (num()?, num()?, num()?, num()?, num()?);
    Some(ChildRun {
        target,
        outcome: Outcome {
            ops,
            elapsed: Duration::from_nanos(ns),
            checksum,
        },
        start_kib,
        peak_kib,
    })
}

/// Child mode: runs workload `id` at `threads` threads with `n` units on
/// this process's global allocator, once untimed and once timed, and
/// prints a `@seed` line.
pub fn child(id: &str, threads: usize, n: u64) -> Result<(), String> {
    let k = Kind::of(id).ok_or(format!("no seed workload {id}"))?;
    let hwm = || status_kib("VmHWM").ok_or("no VmHWM in /proc/self/status");
    let start_kib = hwm()?;
    let warm = k.run(threads, n);
    let outcome = k.run(threads, n);
    if warm.checksum != outcome.checksum {
        return Err(format!(
            "{id}: checksums of two runs differ ({} and {})",
            warm.checksum, outcome.checksum
        ));
    }
    let r = ChildRun {
        target: global::target(),
        outcome,
        start_kib,
        peak_kib: hwm()?,
    };
    println!("{}", line(&r));
    Ok(())
}

/// Runs `cmd` (a child in `--seed-cell` mode, or anything printing a
/// `@seed` line) with [`global::ENV`] set to `target`, and reads its line.
pub fn measure(mut cmd: Command, target: Target) -> Result<ChildRun, String> {
    let out = cmd
        .env(global::ENV, target.name())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot start the child: {e}"))?;
    if !out.status.success() {
        return Err(format!("the child failed ({})", out.status));
    }
    let run = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(parse_line)
        .ok_or("the child printed no @seed line")?;
    if run.target != target {
        return Err(format!(
            "the child ran on {} instead of {}",
            run.target.name(),
            target.name()
        ));
    }
    Ok(run)
}
