//! Key-value storage as the domain sees it. Spin's `default` store implements it
//! in components; [`MemoryKv`] implements it for native tests.

use std::cell::RefCell;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvError(pub String);

impl std::fmt::Display for KvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "key-value store: {}", self.0)
    }
}

impl std::error::Error for KvError {}

pub trait KvStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError>;
    fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError>;
    fn delete(&self, key: &str) -> Result<(), KvError>;
    fn exists(&self, key: &str) -> Result<bool, KvError>;
}

/// An in-memory store for tests of domain logic.
#[derive(Default)]
pub struct MemoryKv {
    map: RefCell<BTreeMap<String, Vec<u8>>>,
}

impl KvStore for MemoryKv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.map.borrow().get(key).cloned())
    }
    fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.map
            .borrow_mut()
            .insert(key.to_string(), value.to_vec());
        Ok(())
    }
    fn delete(&self, key: &str) -> Result<(), KvError> {
        self.map.borrow_mut().remove(key);
        Ok(())
    }
    fn exists(&self, key: &str) -> Result<bool, KvError> {
        Ok(self.map.borrow().contains_key(key))
    }
}
