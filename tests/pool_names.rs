//! Pool names in the statistics: `PoolConfig::name`, the full type path
//! by default, and a pool id appended when two pools share a name.

use hotpool::{stats, Pool, PoolConfig};

mod inbound {
    pub struct Msg(pub [u8; 48]);
}

mod outbound {
    pub struct Msg(pub [u8; 48]);
}

#[test]
fn same_named_types_in_two_modules_are_told_apart() {
    static IN: Pool<inbound::Msg> = Pool::new();
    static OUT: Pool<outbound::Msg> = Pool::new();
    let (a, b) = (
        IN.alloc(inbound::Msg([1; 48])),
        OUT.alloc(outbound::Msg([2; 48])),
    );
    assert_eq!(a.0[0] + b.0[47], 3);
    let (ni, no) = (IN.stats().name, OUT.stats().name);
    assert_eq!(ni, std::any::type_name::<inbound::Msg>());
    assert_eq!(no, std::any::type_name::<outbound::Msg>());
    assert!(ni.ends_with("inbound::Msg") && no.ends_with("outbound::Msg"));
    let all = stats::pools();
    assert_eq!(all.iter().filter(|p| p.name == ni).count(), 1);
    assert_eq!(all.iter().filter(|p| p.name == no).count(), 1);
    let report = stats::report();
    assert!(report.contains(&ni) && report.contains(&no), "{report}");
    drop((a, b));
}

#[test]
fn a_configured_name_replaces_the_type() {
    static ORDERS: Pool<[u64; 7]> = Pool::with_config(PoolConfig::new().name("orders"));
    assert_eq!(ORDERS.stats().name, "orders", "also before first use");
    let o = ORDERS.alloc([0; 7]);
    let s = ORDERS.stats();
    assert_eq!((s.name.as_str(), s.type_name), ("orders", "[u64; 7]"));
    assert!(s.id != 0);
    let listed = stats::pools()
        .into_iter()
        .find(|p| p.name == "orders")
        .unwrap();
    assert_eq!((listed.id, listed.in_use), (s.id, 1));
    assert!(stats::report().lines().any(|l| l.starts_with("orders ")));
    drop(o);
}

#[test]
fn two_unnamed_pools_of_one_type_get_their_ids() {
    let first: Pool<[u32; 13]> = Pool::new();
    let second: Pool<[u32; 13]> = Pool::new();
    let (a, b) = (first.alloc([1; 13]), second.alloc([2; 13]));
    let (id1, id2) = (first.stats().id, second.stats().id);
    assert_ne!(id1, id2);
    let names: Vec<String> = stats::pools()
        .into_iter()
        .filter(|p| p.type_name == "[u32; 13]")
        .map(|p| p.name)
        .collect();
    assert_eq!(
        names,
        [format!("[u32; 13] #{id1}"), format!("[u32; 13] #{id2}")]
    );
    drop((a, b));
    drop(second);
    // Alone again: no suffix.
    let names: Vec<String> = stats::pools()
        .into_iter()
        .filter(|p| p.type_name == "[u32; 13]")
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["[u32; 13]"]);
}
