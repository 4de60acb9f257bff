//! Typed indices for the hypervisor's tables: a VM, a vCPU and a physical
//! hart are each numbered from 0, and each number has its own type, so a
//! vCPU number can never index the VM table by mistake.
//!
//! | index | numbers | stable for |
//! |---|---|---|
//! | [`VmIndex`] | the VMs, in creation order | the hypervisor's life (an ended VM keeps its number) |
//! | [`VcpuIndex`] | every VM's vCPUs, in creation order (a VM's are consecutive) | the hypervisor's life |
//! | [`HartIndex`] | the physical harts the hypervisor was given | the hypervisor's life |
//!
//! A vCPU's id *inside* its VM (its `mhartid` as the guest sees it) is a
//! different thing: [`crate::vcpu::Vcpu::id`].

use std::fmt;
use std::marker::PhantomData;

macro_rules! index {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub usize);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($what, " {}"), self.0)
            }
        }

        impl From<usize> for $name {
            fn from(i: usize) -> Self {
                $name(i)
            }
        }

        impl From<$name> for usize {
            fn from(i: $name) -> usize {
                i.0
            }
        }
    };
}

index!(
    /// A VM, by its place in the hypervisor's list.
    VmIndex,
    "VM"
);
index!(
    /// A vCPU, by its place in the hypervisor's list of all VMs' vCPUs.
    VcpuIndex,
    "vCPU"
);
index!(
    /// A physical hart, by its place in the slice of harts the hypervisor
    /// is given.
    HartIndex,
    "hart"
);

/// A vector indexed by one kind of index only.
#[derive(Clone, Debug)]
pub struct Table<I, T> {
    items: Vec<T>,
    _index: PhantomData<fn(I) -> I>,
}

impl<I, T> Default for Table<I, T> {
    fn default() -> Self {
        Self { items: Vec::new(), _index: PhantomData }
    }
}

impl<I: From<usize> + Into<usize> + Copy, T> Table<I, T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// `n` items made by `f`.
    pub fn from_fn(n: usize, f: impl FnMut(usize) -> T) -> Self {
        Self { items: (0..n).map(f).collect(), _index: PhantomData }
    }

    /// Appends `item`; returns its index.
    pub fn push(&mut self, item: T) -> I {
        self.items.push(item);
        I::from(self.items.len() - 1)
    }

    pub fn get(&self, i: I) -> Option<&T> {
        self.items.get(i.into())
    }

    pub fn get_mut(&mut self, i: I) -> Option<&mut T> {
        self.items.get_mut(i.into())
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The next index [`push`](Self::push) will return.
    pub fn next_index(&self) -> I {
        I::from(self.items.len())
    }

    /// Every index, in order.
    pub fn indices(&self) -> impl Iterator<Item = I> + use<I, T> {
        (0..self.items.len()).map(I::from)
    }

    pub fn iter(&self) -> impl Iterator<Item = (I, &T)> {
        self.items.iter().enumerate().map(|(i, t)| (I::from(i), t))
    }

    pub fn values(&self) -> std::slice::Iter<'_, T> {
        self.items.iter()
    }

    pub fn values_mut(&mut self) -> std::slice::IterMut<'_, T> {
        self.items.iter_mut()
    }
}

impl<I: Into<usize>, T> std::ops::Index<I> for Table<I, T> {
    type Output = T;
    fn index(&self, i: I) -> &T {
        &self.items[i.into()]
    }
}

impl<I: Into<usize>, T> std::ops::IndexMut<I> for Table<I, T> {
    fn index_mut(&mut self, i: I) -> &mut T {
        &mut self.items[i.into()]
    }
}
