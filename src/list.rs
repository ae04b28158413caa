//! The one intrusive doubly-linked list of hotpool.
//!
//! A node is any struct that embeds a [`Link`] and says where it is by
//! implementing [`Linked`]. The list ([`List`]) holds raw pointers to nodes;
//! it never allocates and never forms a `&mut` (or `&`) to a node's whole
//! struct, only raw accesses to the node's `Link` field. So other fields of
//! a node may be read by other threads while the list is changed (as a pool
//! chunk's owner pointer is read by lock-free frees), and a node may be
//! reached from several raw pointers at once without breaking Rust's
//! aliasing rules (Stacked and Tree Borrows).
//!
//! It imports only `core`, so every layer may use it (the pool's chunk
//! lists, the arena's chunk and run lists).
//!
//! ```text
//!   List { head, tail }
//!     |                                     |
//!     v                                     v
//!   node A            node B            node C
//!   +--------+        +--------+        +--------+
//!   | Link   | -next->| Link   | -next->| Link   | -next-> null
//!   |  next  |<-prev- |  next  |<-prev- |  next  |
//!   |  prev  |        |  prev  |        |  prev  |
//!   +--------+        +--------+        +--------+
//!   (other fields untouched by the list)
//! ```
//!
//! Whoever owns the list serialises its changes (a lock, or a single
//! owning thread); the list itself has no synchronisation.
//!
//! ```ignore
//! // (crate-private: an example of use inside hotpool)
//! use crate::list::{Link, Linked, List};
//!
//! struct Chunk { link: Link<Chunk>, free: usize }
//!
//! // SAFETY: `link` returns the node's own `link` field.
//! unsafe impl Linked for Chunk {
//!     unsafe fn link(this: *mut Chunk) -> *mut Link<Chunk> {
//!         // SAFETY: forwarded from the caller: `this` is a live node.
//!         unsafe { core::ptr::addr_of_mut!((*this).link) }
//!     }
//! }
//!
//! let mut list = List::<Chunk>::new();
//! let a: *mut Chunk = /* a live node, in no list */;
//! // SAFETY: `a` is live and in no list; we serialise the list.
//! unsafe { list.push_back(a) };
//! assert!(unsafe { list.contains(a) });
//! assert_eq!(list.head(), a);
//! unsafe { list.remove(a) };
//! assert!(list.is_empty());
//! ```

use core::marker::PhantomData;
use core::ptr;

/// The link fields a node embeds: its neighbours in the list it is in
/// (both null when it is in none, or alone in one).
///
/// Made with [`Link::new`]; touched only through [`List`] (and, for a
/// node in no list, [`List::next`] reads it as a singly-linked chain's
/// link, see [`List::push_front`]).
#[derive(Debug)]
#[repr(C)]
pub(crate) struct Link<T> {
    next: *mut T,
    prev: *mut T,
}

impl<T> Link<T> {
    /// An unlinked link.
    pub(crate) const fn new() -> Link<T> {
        Link {
            next: ptr::null_mut(),
            prev: ptr::null_mut(),
        }
    }
}

/// A struct that embeds a [`Link`] and so can be a node of a [`List`].
///
/// `K` names which link: a node that is in two lists at once (through two
/// `Link` fields) implements `Linked<K>` once per field, with a marker type
/// `K` for each, and each list says which with `List<T, K>`. A node with
/// one link uses the default `K = ()`.
///
/// # Safety
///
/// [`Linked::link`] returns a pointer to a `Link<Self>` inside `*this`,
/// always the same field, derived from `this` without creating a reference
/// to the whole node (use `core::ptr::addr_of_mut!((*this).field)`), and
/// that field is used by no one but the lists.
pub(crate) unsafe trait Linked<K = ()>: Sized {
    /// The node's link field.
    ///
    /// # Safety
    ///
    /// `this` points to a live node.
    unsafe fn link(this: *mut Self) -> *mut Link<Self>;
}

/// An intrusive doubly-linked list of nodes of type `T`, by raw pointer,
/// through their link `K` (see [`Linked`]).
///
/// Every method that takes a node is `unsafe`: the node must be live (and
/// stay so while listed), and list operations on nodes it shares must be
/// serialised by the caller. The list owns nothing: dropping it leaves the
/// nodes as they are. All-zero memory is an empty list, and an all-zero
/// `Link` is unlinked, so zeroed metadata needs no initialisation.
#[derive(Debug)]
pub(crate) struct List<T: Linked<K>, K = ()> {
    head: *mut T,
    tail: *mut T,
    len: usize,
    _nodes: PhantomData<(*mut T, K)>,
}

impl<T: Linked<K>, K> List<T, K> {
    /// An empty list.
    pub(crate) const fn new() -> List<T, K> {
        List {
            head: ptr::null_mut(),
            tail: ptr::null_mut(),
            len: 0,
            _nodes: PhantomData,
        }
    }

    /// The first node, or null.
    pub(crate) fn head(&self) -> *mut T {
        self.head
    }

    /// Nodes in the list.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether the list has no node.
    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_null()
    }

    /// The node after `node` in its list, or null.
    ///
    /// # Safety
    ///
    /// `node` is live.
    pub(crate) unsafe fn next(node: *mut T) -> *mut T {
        // SAFETY: per the contract; a raw read of the link field only.
        unsafe { (*<T as Linked<K>>::link(node)).next }
    }

    /// The node before `node` in its list, or null.
    ///
    /// # Safety
    ///
    /// `node` is live.
    pub(crate) unsafe fn prev(node: *mut T) -> *mut T {
        // SAFETY: per the contract; a raw read of the link field only.
        unsafe { (*<T as Linked<K>>::link(node)).prev }
    }

    /// Whether `node` is in this list.
    ///
    /// # Safety
    ///
    /// `node` is live and in this list or in none (a node in another list
    /// may be reported as in this one).
    pub(crate) unsafe fn contains(&self, node: *mut T) -> bool {
        // SAFETY: per the contract.
        self.head == node || !unsafe { Self::prev(node) }.is_null()
    }

    /// Puts `node` first.
    ///
    /// # Safety
    ///
    /// `node` is live and in no list.
    pub(crate) unsafe fn push_front(&mut self, node: *mut T) {
        // SAFETY: `node` and the head (if any) are live nodes; only their
        // link fields are written.
        unsafe {
            let link = <T as Linked<K>>::link(node);
            (*link).prev = ptr::null_mut();
            (*link).next = self.head;
            if self.head.is_null() {
                self.tail = node;
            } else {
                (*<T as Linked<K>>::link(self.head)).prev = node;
            }
        }
        self.head = node;
        self.len += 1;
    }

    /// Puts `node` last.
    ///
    /// # Safety
    ///
    /// `node` is live and in no list.
    pub(crate) unsafe fn push_back(&mut self, node: *mut T) {
        // SAFETY: `node` and the tail (if any) are live nodes; only their
        // link fields are written.
        unsafe {
            let link = <T as Linked<K>>::link(node);
            (*link).next = ptr::null_mut();
            (*link).prev = self.tail;
            if self.tail.is_null() {
                self.head = node;
            } else {
                (*<T as Linked<K>>::link(self.tail)).next = node;
            }
        }
        self.tail = node;
        self.len += 1;
    }

    /// Takes `node` out of the list; its link becomes unlinked.
    ///
    /// # Safety
    ///
    /// `node` is in this list.
    pub(crate) unsafe fn remove(&mut self, node: *mut T) {
        // SAFETY: `node` and its neighbours are live nodes of this list;
        // only their link fields are touched.
        unsafe {
            let link = <T as Linked<K>>::link(node);
            let (next, prev) = ((*link).next, (*link).prev);
            if prev.is_null() {
                self.head = next;
            } else {
                (*<T as Linked<K>>::link(prev)).next = next;
            }
            if next.is_null() {
                self.tail = prev;
            } else {
                (*<T as Linked<K>>::link(next)).prev = prev;
            }
            (*link).next = ptr::null_mut();
            (*link).prev = ptr::null_mut();
        }
        self.len -= 1;
    }

    /// Puts `new` where `old` is, keeping the order of the others; `old`'s
    /// link becomes unlinked.
    ///
    /// # Safety
    ///
    /// `old` is in this list; `new` is live and in no list.
    // Only the arena (Linux only) replaces nodes.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) unsafe fn replace(&mut self, old: *mut T, new: *mut T) {
        // SAFETY: `old`, `new` and `old`'s neighbours are live nodes; only
        // their link fields are touched.
        unsafe {
            let (ol, nl) = (<T as Linked<K>>::link(old), <T as Linked<K>>::link(new));
            let (next, prev) = ((*ol).next, (*ol).prev);
            (*nl).next = next;
            (*nl).prev = prev;
            if prev.is_null() {
                self.head = new;
            } else {
                (*<T as Linked<K>>::link(prev)).next = new;
            }
            if next.is_null() {
                self.tail = new;
            } else {
                (*<T as Linked<K>>::link(next)).prev = new;
            }
            (*ol).next = ptr::null_mut();
            (*ol).prev = ptr::null_mut();
        }
    }

    /// Takes the first node out of the list, or returns null if empty.
    pub(crate) fn pop_front(&mut self) -> *mut T {
        let node = self.head;
        if !node.is_null() {
            // SAFETY: the head is a live node of this list.
            unsafe { self.remove(node) };
        }
        node
    }
}

#[cfg(test)]
mod tests {
    use super::{Link, Linked, List};
    use core::ptr;

    struct Node {
        link: Link<Node>,
        value: usize,
    }

    // SAFETY: returns the node's own `link` field, without a reference.
    unsafe impl Linked for Node {
        unsafe fn link(this: *mut Node) -> *mut Link<Node> {
            // SAFETY: forwarded: `this` is live.
            unsafe { ptr::addr_of_mut!((*this).link) }
        }
    }

    fn nodes(n: usize) -> Vec<*mut Node> {
        (0..n)
            .map(|value| {
                Box::into_raw(Box::new(Node {
                    link: Link::new(),
                    value,
                }))
            })
            .collect()
    }

    fn values(list: &List<Node>) -> Vec<usize> {
        let mut out = Vec::new();
        let mut n = list.head();
        while !n.is_null() {
            // SAFETY: listed nodes are live boxes of the test.
            unsafe {
                out.push((*n).value);
                n = List::next(n);
            }
        }
        out
    }

    #[test]
    fn push_remove_and_pop_keep_order_and_links() {
        let ns = nodes(4);
        let mut list = List::new();
        // SAFETY: the nodes are live boxes in no list; one thread.
        unsafe {
            list.push_back(ns[1]);
            list.push_front(ns[0]);
            list.push_back(ns[2]);
            list.push_back(ns[3]);
            assert_eq!(values(&list), [0, 1, 2, 3]);
            assert_eq!(list.len(), 4);
            assert!(list.contains(ns[0]) && list.contains(ns[3]));
            list.remove(ns[2]);
            assert!(!list.contains(ns[2]));
            assert_eq!(values(&list), [0, 1, 3]);
            assert_eq!(List::prev(ns[3]), ns[1]);
            assert_eq!(List::next(ns[3]), ptr::null_mut());
            assert_eq!(list.pop_front(), ns[0]);
            list.remove(ns[3]);
            assert_eq!(values(&list), [1]);
            assert_eq!(list.head(), ns[1]);
            assert_eq!(
                (List::prev(ns[1]), List::next(ns[1])),
                (ptr::null_mut(), ptr::null_mut())
            );
            assert_eq!(list.pop_front(), ns[1]);
            assert!(list.is_empty() && list.pop_front().is_null());
            assert_eq!(list.len(), 0);
            for n in ns {
                drop(Box::from_raw(n));
            }
        }
    }

    #[test]
    fn replace_keeps_place_and_tail_follows() {
        let ns = nodes(5);
        let mut list = List::new();
        // SAFETY: the nodes are live boxes; `ns[3]` and `ns[4]` are in no
        // list when they go in; one thread.
        unsafe {
            for &n in &ns[..3] {
                list.push_back(n);
            }
            list.replace(ns[1], ns[3]);
            assert_eq!(values(&list), [0, 3, 2]);
            assert_eq!(
                (List::prev(ns[1]), List::next(ns[1])),
                (ptr::null_mut(), ptr::null_mut())
            );
            list.replace(ns[0], ns[1]);
            list.replace(ns[2], ns[4]);
            assert_eq!(values(&list), [1, 3, 4]);
            assert_eq!((list.head(), list.len()), (ns[1], 3));
            assert_eq!(List::prev(ns[4]), ns[3]);
            // The tail moved to `ns[4]`: a push goes after it.
            list.push_back(ns[2]);
            assert_eq!(values(&list), [1, 3, 4, 2]);
            while !list.pop_front().is_null() {}
            for n in ns {
                drop(Box::from_raw(n));
            }
        }
    }

    /// A node in two lists at once, one per link field.
    struct Two {
        a: Link<Two>,
        b: Link<Two>,
    }
    struct ByA;
    struct ByB;

    // SAFETY: returns the node's own `a` field, without a reference.
    unsafe impl Linked<ByA> for Two {
        unsafe fn link(this: *mut Two) -> *mut Link<Two> {
            // SAFETY: forwarded: `this` is live.
            unsafe { ptr::addr_of_mut!((*this).a) }
        }
    }

    // SAFETY: returns the node's own `b` field, without a reference.
    unsafe impl Linked<ByB> for Two {
        unsafe fn link(this: *mut Two) -> *mut Link<Two> {
            // SAFETY: forwarded: `this` is live.
            unsafe { ptr::addr_of_mut!((*this).b) }
        }
    }

    #[test]
    fn two_links_make_two_independent_lists() {
        // Zeroed links are unlinked, as in the arena's zeroed metadata.
        // SAFETY: all-zero is a valid `Two` (null pointers).
        let ns: Vec<*mut Two> = (0..3)
            .map(|_| Box::into_raw(Box::new(unsafe { core::mem::zeroed::<Two>() })))
            .collect();
        let mut la = List::<Two, ByA>::new();
        let mut lb = List::<Two, ByB>::new();
        // SAFETY: live boxes, each pushed once per list; one thread.
        unsafe {
            for &n in &ns {
                la.push_back(n);
                lb.push_front(n);
            }
            la.remove(ns[1]);
            assert_eq!((la.head(), la.len()), (ns[0], 2));
            assert_eq!(List::<Two, ByA>::next(ns[0]), ns[2]);
            assert_eq!((lb.head(), lb.len()), (ns[2], 3));
            assert_eq!(List::<Two, ByB>::prev(ns[0]), ns[1]);
            assert_eq!(List::<Two, ByB>::next(ns[2]), ns[1]);
            assert!(lb.contains(ns[1]) && !la.contains(ns[1]));
            for n in ns {
                drop(Box::from_raw(n));
            }
        }
    }

    #[test]
    fn other_fields_stay_usable_through_other_pointers() {
        let ns = nodes(2);
        let alias = ns[0].cast_const();
        let mut list = List::new();
        // SAFETY: live nodes; the list touches only link fields, so reads
        // through `alias` stay valid in between (Miri checks this).
        unsafe {
            list.push_front(ns[0]);
            assert_eq!((*alias).value, 0);
            list.push_front(ns[1]);
            let first = ns[0];
            (*first).value = 7;
            list.remove(ns[0]);
            assert_eq!((*alias).value, 7);
            list.remove(ns[1]);
            for n in ns {
                drop(Box::from_raw(n));
            }
        }
    }
}
