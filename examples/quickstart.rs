//! hotpool in one file: copy it and change the types.
//!
//! - messages and their buffers come from static typed pools (`Pool`,
//!   `Pooled`: like `Box`, but freed memory stays in the pool for reuse);
//! - a link table holds `Shared` owners and gives out `Weak` handles, 8-byte
//!   keys that upgrade to `None` once the link is closed, even after its
//!   memory was reused;
//! - messages cross threads over a channel and are freed by the receiver.
//!
//! ```sh
//! cargo run --release --example quickstart
//! ```

use std::sync::mpsc::channel;
use std::thread;

use hotpool::{Pool, Pooled, Shared, Weak};

struct Buffer([u8; 512]);

struct Link {
    name: String,
}

struct Message {
    id: u64,
    link: Weak<Link>,
    body: Vec<Pooled<Buffer>>,
}

// One pool per type, declared as statics.
static MESSAGES: Pool<Message> = Pool::new();
static BUFFERS: Pool<Buffer> = Pool::new();
static LINKS: Pool<Link> = Pool::new();

fn main() {
    // The link table owns the links (`Shared`); messages hold `Weak`s.
    let mut links: Vec<Shared<Link>> = ["north", "south"]
        .map(|name| Shared::new_in(Link { name: name.into() }, &LINKS))
        .into();
    let (tx, rx) = channel::<Pooled<Message>>();

    // The receiver checks each message; dropping it returns the message and
    // its buffers to their pools, from this other thread.
    let receiver = thread::spawn(move || {
        let (mut delivered, mut orphaned) = (0, 0);
        for m in rx {
            assert!(m.body.iter().all(|b| b.0.iter().all(|&x| x == m.id as u8)));
            match m.link.upgrade() {
                Some(link) => {
                    assert!(link.name == "north" || link.name == "south");
                    delivered += 1;
                }
                None => orphaned += 1, // its link was closed while it was queued
            }
        }
        (delivered, orphaned)
    });

    for id in 0..10_000u64 {
        let link = Shared::downgrade(&links[id as usize % links.len()]);
        let body = (0..3)
            .map(|_| BUFFERS.alloc(Buffer([id as u8; 512])))
            .collect();
        tx.send(MESSAGES.alloc(Message { id, link, body })).unwrap();
        if id == 5_000 {
            // Close "south": its memory goes back to LINKS at once, and the
            // messages still queued for it find `upgrade` returning `None`.
            links.pop();
        }
    }
    drop(tx);
    let (delivered, orphaned) = receiver.join().unwrap();
    println!("{delivered} messages delivered, {orphaned} found their link closed");

    // Every message was freed; the pools keep the memory for the next ones.
    let buffers = BUFFERS.stats();
    assert_eq!((buffers.in_use, MESSAGES.stats().in_use), (0, 0));
    println!("buffers in use: 0, room kept for {}", buffers.capacity);
    println!("\n{}", hotpool::stats::report());
}
