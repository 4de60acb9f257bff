//! The kernel's `System.map`: `ADDRESS TYPE NAME` lines, as `nm` prints
//! them. Debian ships a stub in the linux-image package; the real map is
//! in `linux-image-*-dbg` (scripts/fetch-symbols.sh takes it out).

use std::collections::HashMap;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SymbolError {
    #[error("System.map line {0}: not `ADDRESS TYPE NAME`")]
    Line(usize),
    #[error("System.map has no symbol {0} (a stub map? Debian's real one is in linux-image-*-dbg)")]
    Missing(String),
}

/// Symbols by name and by address.
pub struct SymbolMap {
    by_name: HashMap<String, u64>,
    /// (address, name), sorted by address.
    sorted: Vec<(u64, String)>,
}

impl SymbolMap {
    pub fn parse(text: &str) -> Result<SymbolMap, SymbolError> {
        let mut by_name = HashMap::new();
        let mut sorted = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let mut f = line.split_whitespace();
            let (Some(a), Some(_t), Some(name)) = (f.next(), f.next(), f.next()) else {
                if line.trim().is_empty() {
                    continue;
                }
                return Err(SymbolError::Line(i + 1));
            };
            let addr = u64::from_str_radix(a, 16).map_err(|_| SymbolError::Line(i + 1))?;
            by_name.entry(name.to_string()).or_insert(addr);
            sorted.push((addr, name.to_string()));
        }
        sorted.sort();
        Ok(SymbolMap { by_name, sorted })
    }

    pub fn get(&self, name: &str) -> Result<u64, SymbolError> {
        self.by_name.get(name).copied().ok_or_else(|| SymbolError::Missing(name.into()))
    }

    /// The symbol at or below `addr`, and the offset into it.
    pub fn lookup(&self, addr: u64) -> Option<(&str, u64)> {
        let i = self.sorted.partition_point(|(a, _)| *a <= addr);
        let (a, n) = self.sorted.get(i.checked_sub(1)?)?;
        Some((n, addr - a))
    }

    /// The address of the first symbol above `addr` (the end of the object
    /// at `addr`, as far as the map tells).
    pub fn next_above(&self, addr: u64) -> Option<u64> {
        let i = self.sorted.partition_point(|(a, _)| *a <= addr);
        self.sorted.get(i).map(|(a, _)| *a)
    }

    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        let m = SymbolMap::parse(
            "ffffffff80000000 T _start\nffffffff810015f8 D sys_call_table\nffffffff81002000 D next_thing\n",
        )
        .unwrap();
        assert_eq!(m.get("sys_call_table").unwrap(), 0xffffffff810015f8);
        assert_eq!(m.lookup(0xffffffff810015f8 + 16), Some(("sys_call_table", 16)));
        assert_eq!(m.next_above(0xffffffff810015f8), Some(0xffffffff81002000));
        assert_eq!(m.lookup(0x10), None);
        assert!(matches!(m.get("init_task"), Err(SymbolError::Missing(_))));
        assert_eq!(SymbolMap::parse("zz T x\n").err(), Some(SymbolError::Line(1)));
    }
}
