//! The router example's workload, shared by `examples/router.rs` and the
//! soak test (`tests/soak.rs`): worker threads build messages (a header and
//! a chain of buffers), route them in batches to each other, check and free
//! them, while the main thread closes and reopens the links they refer to.

use std::ops::DerefMut;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use hotpool::{Pool, PoolConfig, Pooled, Shared, Weak};

/// Bytes of payload per buffer, as the router's `qd_buffer_t`.
pub const BUFFER_SIZE: usize = 512;
/// Messages handed to another worker at once (the router's work list).
const BATCH: usize = 64;

/// Where messages and buffers live: the pools or the global allocator.
pub trait Heap: Sized + Send + Sync + 'static {
    const NAME: &'static str;
    type Ptr<T: Send + 'static>: DerefMut<Target = T> + Send;
    fn message(m: Message<Self>) -> Self::Ptr<Message<Self>>;
    fn buffer(b: Buffer<Self>) -> Self::Ptr<Buffer<Self>>;
}

pub struct Buffer<H: Heap> {
    next: Option<H::Ptr<Buffer<H>>>,
    len: usize,
    data: [u8; BUFFER_SIZE],
}

/// A connection to a peer; only the main thread owns it, messages hold `Weak`s.
pub struct Link {
    peer: usize,
    generation: u64,
    delivered: AtomicU64,
}

pub static LINKS: Pool<Link> = Pool::with_config(PoolConfig::new().name("links"));

pub struct Message<H: Heap> {
    id: u64,
    link: Weak<Link>,
    from: usize,
    to: usize,
    len: usize,
    checksum: u64,
    body: Option<H::Ptr<Buffer<H>>>,
}

pub struct Pools;
pub static MESSAGES: Pool<Message<Pools>> = Pool::with_config(PoolConfig::new().name("messages"));
pub static BUFFERS: Pool<Buffer<Pools>> = Pool::with_config(PoolConfig::new().name("buffers"));

impl Heap for Pools {
    const NAME: &'static str = "hotpool";
    type Ptr<T: Send + 'static> = Pooled<T>;
    fn message(m: Message<Self>) -> Pooled<Message<Self>> {
        MESSAGES.alloc(m)
    }
    fn buffer(b: Buffer<Self>) -> Pooled<Buffer<Self>> {
        BUFFERS.alloc(b)
    }
}

/// Builds a message of `len` bytes whose content derives from its id.
fn receive<H: Heap>(
    id: u64,
    from: usize,
    to: usize,
    link: Weak<Link>,
    len: usize,
) -> H::Ptr<Message<H>> {
    let chunks = len.div_ceil(BUFFER_SIZE);
    let mut body: Option<H::Ptr<Buffer<H>>> = None;
    let mut checksum = 0u64;
    // Build the chain back to front so each buffer links to the next.
    for i in (0..chunks).rev() {
        let used = (len - i * BUFFER_SIZE).min(BUFFER_SIZE);
        let fill = (id as u8).wrapping_add(i as u8);
        let mut b = H::buffer(Buffer {
            next: body.take(),
            len: used,
            data: [0; BUFFER_SIZE],
        });
        b.data[..used].fill(fill);
        checksum = checksum.wrapping_add(fill as u64 * used as u64);
        body = Some(b);
    }
    H::message(Message {
        id,
        link,
        from,
        to,
        len,
        checksum,
        body,
    })
}

/// Checks a delivered message and counts it on its link, if the link is
/// still open; returns (payload bytes, whether the link was closed).
/// Dropping the message afterwards frees the chain.
fn deliver<H: Heap>(m: &Message<H>, me: usize) -> (usize, bool) {
    assert_eq!(m.to, me, "misrouted message {}", m.id);
    let closed = match m.link.upgrade() {
        Some(link) => {
            assert_eq!(link.peer, me, "message {} holds another peer's link", m.id);
            link.delivered.fetch_add(1, Ordering::Relaxed);
            false
        }
        None => true,
    };
    let (mut sum, mut len, mut next) = (0u64, 0usize, m.body.as_deref());
    while let Some(b) = next {
        sum = sum.wrapping_add(b.data[0] as u64 * b.len as u64);
        assert_eq!(
            b.data[b.len - 1],
            b.data[0],
            "corrupted buffer in message {}",
            m.id
        );
        len += b.len;
        next = b.next.as_deref();
    }
    assert_eq!(
        (sum, len),
        (m.checksum, m.len),
        "corrupted message {} from {}",
        m.id,
        m.from
    );
    (len, closed)
}

/// What workers hand each other: a batch of messages.
type Batch<H> = Vec<<H as Heap>::Ptr<Message<H>>>;

pub struct Options {
    pub threads: usize,
    pub duration: Duration,
    pub size: usize,
}

#[repr(align(128))]
#[derive(Default)]
struct Counter(AtomicU64);

pub struct RunResult {
    pub messages: u64,
    pub bytes: u64,
    pub elapsed: Duration,
    pub link_closed: u64,
    pub links_opened: u64,
}

/// Opens a new link to `peer`, owned by the caller alone.
fn open_link(peer: usize, generation: u64) -> Shared<Link> {
    Shared::new_in(
        Link {
            peer,
            generation,
            delivered: AtomicU64::new(0),
        },
        &LINKS,
    )
}

pub fn run<H: Heap>(opts: &Options) -> RunResult {
    let workers = opts.threads;
    let mut inboxes: Vec<Option<Receiver<Batch<H>>>> = Vec::new();
    let mut outboxes: Vec<SyncSender<Batch<H>>> = Vec::new();
    for _ in 0..workers {
        let (tx, rx) = sync_channel(8);
        outboxes.push(tx);
        inboxes.push(Some(rx));
    }
    let delivered: Arc<Vec<Counter>> = Arc::new((0..workers).map(|_| Counter::default()).collect());
    let bytes: Arc<Vec<Counter>> = Arc::new((0..workers).map(|_| Counter::default()).collect());
    let closed: Arc<Vec<Counter>> = Arc::new((0..workers).map(|_| Counter::default()).collect());
    // The main thread owns every link; workers see them only through Weak.
    let mut owners: Vec<Shared<Link>> = (0..workers).map(|peer| open_link(peer, 0)).collect();
    let links: Arc<Vec<Mutex<Weak<Link>>>> = Arc::new(
        owners
            .iter()
            .map(|l| Mutex::new(Shared::downgrade(l)))
            .collect(),
    );
    let mut links_opened = workers as u64;
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let handles: Vec<_> = (0..workers)
        .map(|me| {
            let inbox = inboxes[me].take().unwrap();
            let outboxes = outboxes.clone();
            let (delivered, bytes, stop) = (delivered.clone(), bytes.clone(), stop.clone());
            let (closed, links) = (closed.clone(), links.clone());
            let size = opts.size;
            thread::spawn(move || {
                let mut next_id = (me as u64) << 48;
                let mut to = (me + 1) % workers;
                let drain = |inbox: &Receiver<Batch<H>>| {
                    while let Ok(batch) = inbox.try_recv() {
                        let (mut n, mut late) = (0, 0);
                        for m in &batch {
                            let (len, link_closed) = deliver(m, me);
                            n += len as u64;
                            late += u64::from(link_closed);
                        }
                        closed[me].0.fetch_add(late, Ordering::Relaxed);
                        delivered[me]
                            .0
                            .fetch_add(batch.len() as u64, Ordering::Relaxed);
                        bytes[me].0.fetch_add(n, Ordering::Relaxed);
                    }
                };
                while !stop.load(Ordering::Relaxed) {
                    let link = *links[to].lock().unwrap();
                    let mut batch: Vec<_> = (0..BATCH)
                        .map(|_| {
                            next_id += 1;
                            receive::<H>(next_id, me, to, link, size)
                        })
                        .collect();
                    loop {
                        match outboxes[to].try_send(batch) {
                            Ok(()) => break,
                            Err(TrySendError::Full(back)) => {
                                batch = back;
                                drain(&inbox);
                                if stop.load(Ordering::Relaxed) {
                                    break;
                                }
                                thread::yield_now();
                            }
                            Err(TrySendError::Disconnected(_)) => {
                                unreachable!("workers outlive the run")
                            }
                        }
                    }
                    drain(&inbox);
                    to = (to + 1) % workers;
                    if to == me && workers > 1 {
                        to = (to + 1) % workers;
                    }
                }
                drain(&inbox);
                inbox
            })
        })
        .collect();
    let total = |c: &[Counter]| c.iter().map(|x| x.0.load(Ordering::Relaxed)).sum::<u64>();
    let mut last = 0;
    while start.elapsed() < opts.duration {
        thread::sleep(
            Duration::from_millis(500).min(opts.duration.saturating_sub(start.elapsed())),
        );
        let now = total(&delivered);
        println!(
            "  [{:>4.1}s] {:>12} messages delivered ({:>6.2} M msg/s), {} found their link closed",
            start.elapsed().as_secs_f64(),
            now,
            (now - last) as f64 / 0.5e6,
            total(&closed)
        );
        last = now;
        // Close every link and open a new one while messages still refer
        // to the old: its memory goes back to LINKS at once.
        for (peer, owner) in owners.iter_mut().enumerate() {
            *owner = open_link(peer, owner.generation + 1);
            *links[peer].lock().unwrap() = Shared::downgrade(owner);
            links_opened += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed();
    // Every worker drains its inbox at the end; what is still queued is
    // dropped with the receivers, after all workers have stopped.
    let inboxes: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    drop(inboxes);
    drop(owners);
    RunResult {
        messages: total(&delivered),
        bytes: total(&bytes),
        elapsed,
        link_closed: total(&closed),
        links_opened,
    }
}
