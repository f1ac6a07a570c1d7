//! Resource arithmetic: what a task reserves, what a node has left, and how generic resources
//! (`GPU=UUID-1` named units, `SSD=5` counts) are claimed and given back.

use std::collections::{BTreeMap, BTreeSet};

use shoal_store::model::{GenericResource, Resources, TaskSpec};

/// What one task reserves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// Nano CPUs.
    pub cpu: i64,
    /// Bytes of memory.
    pub mem: i64,
    /// Generic resources: kind and count.
    pub generic: Vec<(String, i64)>,
}

impl Request {
    /// The reservations of a task spec.
    pub fn of(spec: &TaskSpec) -> Self {
        let Some(r) = spec.reservations() else {
            return Request::default();
        };
        let mut generic: BTreeMap<String, i64> = BTreeMap::new();
        for g in &r.generic_resources {
            let n = match (&g.discrete_resource_spec, &g.named_resource_spec) {
                (Some(d), _) => d.value,
                (None, Some(_)) => 1,
                (None, None) => 0,
            };
            if n > 0 {
                *generic.entry(g.kind().to_string()).or_default() += n;
            }
        }
        Request {
            cpu: r.nano_cpus.max(0),
            mem: r.memory_bytes.max(0),
            generic: generic.into_iter().collect(),
        }
    }

    /// Whether nothing is reserved.
    pub fn is_empty(&self) -> bool {
        self.cpu == 0 && self.mem == 0 && self.generic.is_empty()
    }
}

/// What a node has available.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capacity {
    /// Nano CPUs.
    pub cpu: i64,
    /// Bytes of memory.
    pub mem: i64,
    /// Countable generic resources by kind.
    pub discrete: BTreeMap<String, i64>,
    /// Named generic resource units by kind.
    pub named: BTreeMap<String, BTreeSet<String>>,
}

impl Capacity {
    /// A node's total resources.
    pub fn of(r: &Resources) -> Self {
        let mut c = Capacity {
            cpu: r.nano_cpus,
            mem: r.memory_bytes,
            ..Default::default()
        };
        for g in &r.generic_resources {
            if let Some(d) = &g.discrete_resource_spec {
                *c.discrete.entry(d.kind.clone()).or_default() += d.value;
            } else if let Some(n) = &g.named_resource_spec {
                c.named
                    .entry(n.kind.clone())
                    .or_default()
                    .insert(n.value.clone());
            }
        }
        c
    }

    fn generic_available(&self, kind: &str) -> i64 {
        self.discrete.get(kind).copied().unwrap_or(0)
            + self.named.get(kind).map_or(0, |s| s.len() as i64)
    }

    /// Whether `req` fits.
    pub fn fits(&self, req: &Request) -> bool {
        req.cpu <= self.cpu
            && req.mem <= self.mem
            && req
                .generic
                .iter()
                .all(|(k, n)| self.generic_available(k) >= *n)
    }

    /// The generic resources a task reserving `req` would be assigned (which must fit):
    /// named units first, so a task that needs a device gets a specific one.
    pub fn pick(&self, req: &Request) -> Vec<GenericResource> {
        let mut assigned = Vec::new();
        for (kind, n) in &req.generic {
            let mut need = *n;
            if let Some(names) = self.named.get(kind) {
                for name in names.iter().take(need.max(0) as usize) {
                    assigned.push(GenericResource::named(kind.clone(), name.clone()));
                    need -= 1;
                }
            }
            if need > 0 {
                assigned.push(GenericResource::discrete(kind.clone(), need));
            }
        }
        assigned
    }

    /// Takes `req` (which must fit); returns the generic resources assigned to the task.
    pub fn claim(&mut self, req: &Request) -> Vec<GenericResource> {
        let assigned = self.pick(req);
        self.take(req.cpu, req.mem, &assigned);
        assigned
    }

    /// Takes resources a task already holds (a task placed before this scheduler started).
    pub fn take(&mut self, cpu: i64, mem: i64, assigned: &[GenericResource]) {
        self.cpu -= cpu;
        self.mem -= mem;
        for g in assigned {
            if let Some(d) = &g.discrete_resource_spec {
                *self.discrete.entry(d.kind.clone()).or_default() -= d.value;
            } else if let Some(n) = &g.named_resource_spec {
                if let Some(set) = self.named.get_mut(&n.kind) {
                    set.remove(&n.value);
                }
            }
        }
    }

    /// Gives back what a task held.
    pub fn give_back(&mut self, cpu: i64, mem: i64, assigned: &[GenericResource]) {
        self.cpu += cpu;
        self.mem += mem;
        for g in assigned {
            if let Some(d) = &g.discrete_resource_spec {
                *self.discrete.entry(d.kind.clone()).or_default() += d.value;
            } else if let Some(n) = &g.named_resource_spec {
                self.named
                    .entry(n.kind.clone())
                    .or_default()
                    .insert(n.value.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_units_are_claimed_and_given_back() {
        let mut c = Capacity::of(&Resources {
            nano_cpus: 2_000_000_000,
            memory_bytes: 1 << 30,
            generic_resources: vec![
                GenericResource::named("GPU", "UUID-1"),
                GenericResource::named("GPU", "UUID-2"),
                GenericResource::discrete("SSD", 4),
            ],
        });
        let req = Request {
            cpu: 1_000_000_000,
            mem: 1 << 29,
            generic: vec![("GPU".into(), 1), ("SSD".into(), 2)],
        };
        assert!(c.fits(&req));
        let got = c.claim(&req);
        assert_eq!(
            got,
            vec![
                GenericResource::named("GPU", "UUID-1"),
                GenericResource::discrete("SSD", 2)
            ]
        );
        assert!(c.fits(&req), "one GPU, one CPU and the memory are left");
        let second = c.claim(&req);
        assert!(!c.fits(&Request {
            generic: vec![("GPU".into(), 1)],
            ..Default::default()
        }));
        c.give_back(req.cpu, req.mem, &second);
        assert_eq!(c.named["GPU"].len(), 1);
        assert_eq!(c.discrete["SSD"], 2);
        assert!(c.fits(&req));
    }
}
