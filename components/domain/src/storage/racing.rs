//! A store for tests of races: [`MemoryKv`] that lets "another request" act
//! right after this one reads a given key (or swaps it), the moment a
//! read-modify-write is exposed.

use std::cell::RefCell;

use crate::kernel::kv::{KvError, KvStore, MemoryKv};

type Hook = Box<dyn FnOnce(&MemoryKv)>;

#[derive(Default)]
pub(crate) struct Racing {
    pub kv: MemoryKv,
    /// Runs once, after the first read of a key starting with `.0`.
    after_read: RefCell<Option<(String, Hook)>>,
    /// Runs once, after the first successful swap of a key starting with `.0`.
    after_swap: RefCell<Option<(String, Hook)>>,
    /// Swaps of keys starting with this always lose.
    pub losing: RefCell<Option<String>>,
}

impl Racing {
    pub(crate) fn after_read(&self, prefix: &str, f: impl FnOnce(&MemoryKv) + 'static) {
        *self.after_read.borrow_mut() = Some((prefix.into(), Box::new(f)));
    }

    pub(crate) fn after_swap(&self, prefix: &str, f: impl FnOnce(&MemoryKv) + 'static) {
        *self.after_swap.borrow_mut() = Some((prefix.into(), Box::new(f)));
    }

    fn fire(slot: &RefCell<Option<(String, Hook)>>, key: &str, kv: &MemoryKv) {
        let due = matches!(&*slot.borrow(), Some((p, _)) if key.starts_with(p.as_str()));
        if due && let Some((_, f)) = slot.borrow_mut().take() {
            f(kv);
        }
    }
}

impl KvStore for Racing {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let v = self.kv.get(key);
        Self::fire(&self.after_read, key, &self.kv);
        v
    }
    fn read_for_swap(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.get(key)
    }
    fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.kv.set(key, value)
    }
    fn delete(&self, key: &str) -> Result<(), KvError> {
        self.kv.delete(key)
    }
    fn exists(&self, key: &str) -> Result<bool, KvError> {
        self.kv.exists(key)
    }
    fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        self.kv.increment(key, delta)
    }
    fn swap(&self, key: &str, seen: Option<&[u8]>, new: &[u8]) -> Result<bool, KvError> {
        if self
            .losing
            .borrow()
            .as_deref()
            .is_some_and(|p| key.starts_with(p))
        {
            return Ok(false);
        }
        let swapped = self.kv.swap(key, seen, new)?;
        if swapped {
            Self::fire(&self.after_swap, key, &self.kv);
        }
        Ok(swapped)
    }
}
