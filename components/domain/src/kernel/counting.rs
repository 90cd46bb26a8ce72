//! A store for tests that counts what a caller asks of it: each primitive
//! operation (what Spin's embedded store turns into one host call) and the
//! bytes read and written. A batch read is one operation (one host call on
//! Spin's stores); create-if-absent uses the trait's default, so it counts
//! as the primitives the embedded store performs.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use crate::kernel::kv::{KvError, KvStore, MemoryKv};

#[derive(Default)]
pub struct CountingKv {
    pub kv: MemoryKv,
    ops: RefCell<BTreeMap<&'static str, usize>>,
    trace: RefCell<Vec<String>>,
    written: Cell<usize>,
    read: Cell<usize>,
}

impl CountingKv {
    pub fn reset(&self) {
        self.ops.borrow_mut().clear();
        self.trace.borrow_mut().clear();
        self.written.set(0);
        self.read.set(0);
    }

    /// Bytes of the values read.
    pub fn read_bytes(&self) -> usize {
        self.read.get()
    }

    fn got(&self, v: Result<Option<Vec<u8>>, KvError>) -> Result<Option<Vec<u8>>, KvError> {
        if let Ok(Some(v)) = &v {
            self.read.set(self.read.get() + v.len());
        }
        v
    }

    /// Operations so far, by name (`get`, `set`, `swap`, ...).
    pub fn ops(&self) -> BTreeMap<&'static str, usize> {
        self.ops.borrow().clone()
    }

    pub fn count(&self, op: &str) -> usize {
        self.ops.borrow().get(op).copied().unwrap_or(0)
    }

    pub fn total(&self) -> usize {
        self.ops.borrow().values().sum()
    }

    /// Values written (sets and swaps) and their bytes.
    pub fn writes(&self) -> (usize, usize) {
        (self.count("set") + self.count("swap"), self.written.get())
    }

    /// Every operation so far, in order: `"<op> <key>"`.
    pub fn trace(&self) -> Vec<String> {
        self.trace.borrow().clone()
    }

    fn op(&self, name: &'static str, key: &str) {
        *self.ops.borrow_mut().entry(name).or_default() += 1;
        self.trace.borrow_mut().push(format!("{name} {key}"));
    }
}

impl KvStore for CountingKv {
    fn get(&self, k: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.op("get", k);
        self.got(self.kv.get(k))
    }
    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        self.op("get_many", &keys.join(","));
        keys.iter().map(|k| self.got(self.kv.get(k))).collect()
    }
    fn set(&self, k: &str, v: &[u8]) -> Result<(), KvError> {
        self.op("set", k);
        self.written.set(self.written.get() + v.len());
        self.kv.set(k, v)
    }
    fn delete(&self, k: &str) -> Result<(), KvError> {
        self.op("delete", k);
        self.kv.delete(k)
    }
    fn exists(&self, k: &str) -> Result<bool, KvError> {
        self.op("exists", k);
        self.kv.exists(k)
    }
    fn increment(&self, k: &str, d: i64) -> Result<i64, KvError> {
        self.op("increment", k);
        self.kv.increment(k, d)
    }
    fn swap(&self, k: &str, seen: Option<&[u8]>, new: &[u8]) -> Result<bool, KvError> {
        self.op("swap", k);
        self.written.set(self.written.get() + new.len());
        self.kv.swap(k, seen, new)
    }
}
