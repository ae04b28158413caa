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
/// # Safety
///
/// [`Linked::link`] returns a pointer to a `Link<Self>` inside `*this`,
/// always the same field, derived from `this` without creating a reference
/// to the whole node (use `core::ptr::addr_of_mut!((*this).field)`), and
/// that field is used by no one but the lists.
pub(crate) unsafe trait Linked: Sized {
    /// The node's link field.
    ///
    /// # Safety
    ///
    /// `this` points to a live node.
    unsafe fn link(this: *mut Self) -> *mut Link<Self>;
}

/// An intrusive doubly-linked list of nodes of type `T`, by raw pointer.
///
/// Every method that takes a node is `unsafe`: the node must be live (and
/// stay so while listed), and list operations on nodes it shares must be
/// serialised by the caller. The list owns nothing: dropping it leaves the
/// nodes as they are.
#[derive(Debug)]
pub(crate) struct List<T: Linked> {
    head: *mut T,
    tail: *mut T,
    len: usize,
    _nodes: PhantomData<*mut T>,
}

impl<T: Linked> List<T> {
    /// An empty list.
    pub(crate) const fn new() -> List<T> {
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
        unsafe { (*T::link(node)).next }
    }

    /// The node before `node` in its list, or null.
    ///
    /// # Safety
    ///
    /// `node` is live.
    pub(crate) unsafe fn prev(node: *mut T) -> *mut T {
        // SAFETY: per the contract; a raw read of the link field only.
        unsafe { (*T::link(node)).prev }
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
            let link = T::link(node);
            (*link).prev = ptr::null_mut();
            (*link).next = self.head;
            if self.head.is_null() {
                self.tail = node;
            } else {
                (*T::link(self.head)).prev = node;
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
            let link = T::link(node);
            (*link).next = ptr::null_mut();
            (*link).prev = self.tail;
            if self.tail.is_null() {
                self.head = node;
            } else {
                (*T::link(self.tail)).next = node;
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
            let link = T::link(node);
            let (next, prev) = ((*link).next, (*link).prev);
            if prev.is_null() {
                self.head = next;
            } else {
                (*T::link(prev)).next = next;
            }
            if next.is_null() {
                self.tail = prev;
            } else {
                (*T::link(next)).prev = prev;
            }
            (*link).next = ptr::null_mut();
            (*link).prev = ptr::null_mut();
        }
        self.len -= 1;
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
