//! A generic key-value store as a server, used by several tasks at once.
//!
//! Run with `cargo run --example kv_store`.

use std::collections::HashMap;
use std::hash::Hash;

use patchboard::{CallError, Server, server};

/// A map owned by the server task; `K` and `V` are chosen by the user.
pub struct KvStore<K, V> {
    map: HashMap<K, V>,
}

#[server]
impl<K: Hash + Eq + Send + 'static, V: Clone + Send + 'static> KvStore<K, V> {
    /// An empty store.
    pub fn new() -> Self {
        KvStore {
            map: HashMap::new(),
        }
    }

    /// Stores `value` under `key`, returning the previous value.
    pub fn put(&mut self, key: K, value: V) -> Option<V> {
        self.map.insert(key, value)
    }

    /// A copy of the value under `key`.
    pub fn get(&self, key: K) -> Option<V> {
        self.map.get(&key).cloned()
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: K) -> Option<V> {
        self.map.remove(&key)
    }

    /// How many keys are stored.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// `true` when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl<K: Hash + Eq + Send + 'static, V: Clone + Send + 'static> Default for KvStore<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

#[tokio::main]
async fn main() -> Result<(), CallError> {
    // Two instantiations of the same generic server in one program.
    let names: KvStoreHandle<u32, String> = KvStore::new().spawn();
    let scores: KvStoreHandle<String, u64> = KvStore::new().spawn();

    // Four writers, each owning a range of keys.
    let writers: Vec<_> = (0..4u32)
        .map(|writer| {
            let names = names.clone();
            tokio::spawn(async move {
                for key in writer * 25..(writer + 1) * 25 {
                    names.put(key, format!("user-{key}")).await?;
                }
                Ok::<_, CallError>(())
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer task")?;
    }
    println!("4 writers stored {} names", names.len().await?);

    // Readers check what the writers stored.
    let readers: Vec<_> = (0..4u32)
        .map(|reader| {
            let names = names.clone();
            tokio::spawn(async move {
                let mut found = 0;
                for key in (reader..100).step_by(4) {
                    let name = names.get(key).await?;
                    assert_eq!(name, Some(format!("user-{key}")));
                    found += 1;
                }
                Ok::<_, CallError>(found)
            })
        })
        .collect();
    let mut read = 0;
    for reader in readers {
        read += reader.await.expect("reader task")?;
    }
    println!("4 readers found all {read} names they looked for");

    println!("remove 7 -> {:?}", names.remove(7).await?);
    println!("get 7 -> {:?}", names.get(7).await?);
    println!("len -> {}", names.len().await?);

    scores.put("ada".to_owned(), 36).await?;
    println!(
        "previous score of ada: {:?}",
        scores.put("ada".to_owned(), 42).await?
    );
    println!("score of ada: {:?}", scores.get("ada".to_owned()).await?);
    assert_eq!(names.len().await?, 99);
    assert!(!names.is_empty().await?);
    Ok(())
}
