//! How a `vae train` process takes part in its run: alone, or as one of the ranks a launcher
//! (`mpirun -n N`, Slurm's `srun`) started. A build with the `mpi` feature trains
//! data-parallel across them (the `cluster` module); a build without it refuses to be one of
//! several.

use crate::core::collective::{Collective, Stopwatch};
use crate::run::Role;
use anyhow::{Result, bail};

/// This process's place among the workers of a run.
pub struct Group {
    /// Rank 0 (or a process alone) writes the run; the others follow.
    pub role: Role,
    /// This process's rank, 0 to `size − 1`.
    pub rank: usize,
    /// How many processes train the run.
    pub size: usize,
    /// Processes of the run on this machine (they share its cores).
    pub local: usize,
    collective: Option<Box<dyn Collective>>,
    /// The time `collective` spends summing.
    stopwatch: Stopwatch,
    #[cfg(feature = "mpi")]
    cluster: Option<crate::cluster::Cluster>,
}

impl Group {
    /// One process, alone.
    pub fn alone() -> Group {
        Group {
            role: Role::Writer,
            rank: 0,
            size: 1,
            local: 1,
            collective: None,
            stopwatch: Stopwatch::default(),
            #[cfg(feature = "mpi")]
            cluster: None,
        }
    }

    /// The group this process was started in, from its launcher's environment: with MPI,
    /// the world's ranks; without, alone.
    ///
    /// # Errors
    /// Without the `mpi` feature, when started as one of several processes (each would train
    /// the same run into the same directory).
    pub fn from_launcher() -> Result<Group> {
        let var = |name: &str| std::env::var(name).ok();
        let Some((name, size)) = launcher_size(var) else { return Ok(Group::alone()) };
        #[cfg(feature = "mpi")]
        {
            let _ = (name, size);
            let Some(cluster) = crate::cluster::Cluster::start() else {
                bail!("MPI was already started in this process")
            };
            let (rank, size) = cluster.rank_and_size();
            let local = local_size(var).unwrap_or(1).clamp(1, size);
            let role = if rank == 0 { Role::Writer } else { Role::Follower };
            let (timed, stopwatch) = crate::core::collective::Timed::new(Box::new(cluster.ranks()));
            let collective = (size > 1).then(|| Box::new(timed) as Box<dyn Collective>);
            Ok(Group { role, rank, size, local, collective, stopwatch, cluster: Some(cluster) })
        }
        #[cfg(not(feature = "mpi"))]
        {
            if size > 1 {
                bail!(
                    "started as one of {size} processes ({name}={size}), but this vae was built without MPI, so each \
                     would train the same run; build it with `cargo build --release --features mpi` (needs Debian's \
                     openmpi-bin libopenmpi-dev clang libclang-dev), or start one process"
                );
            }
            Ok(Group::alone())
        }
    }

    /// The workers to join the trainer to (taken once); `None` alone.
    pub fn take_collective(&mut self) -> Option<Box<dyn Collective>> {
        self.collective.take()
    }

    /// `--threads 0` (all cores): this machine's cores shared among the run's processes on it.
    pub fn default_threads(&self) -> usize {
        (crate::core::pool::available_threads() / self.local).max(1)
    }

    /// Where `result` goes: alone, back to `main` (one red line); one of several ranks, a
    /// failure is said here (with the rank) and ends every rank at once, since the others may
    /// be waiting in a sum this one will never join.
    ///
    /// # Errors
    /// `result`'s, alone.
    pub fn conclude(self, result: Result<()>) -> Result<()> {
        #[cfg(feature = "mpi")]
        if let (Err(e), Some(cluster)) = (&result, &self.cluster)
            && self.size > 1
        {
            let code = match e.downcast_ref::<crate::run::RunError>() {
                Some(interrupted @ crate::run::RunError::Interrupted { .. }) => {
                    eprintln!("{interrupted}");
                    130
                }
                _ => {
                    eprintln!("Error: rank {} of {}: {}", self.rank, self.size, super::error_line(e));
                    1
                }
            };
            cluster.abort(code);
        }
        result
    }

    /// Seconds this process has spent in the group's sums so far.
    pub fn seconds_summing(&self) -> f64 {
        self.stopwatch.seconds()
    }

    /// What the ranks spent summing, said after training on rank 0 (nothing alone).
    pub fn report(&self, steps: u64, seconds: f64) {
        if self.size > 1 && self.role == Role::Writer {
            let spent = self.seconds_summing();
            println!(
                "mpi: {} ranks; summing gradients and losses took {spent:.2} s of {seconds:.2} s ({:.2} ms per step, \
                 {:.0}%, waiting for the slowest rank included)",
                self.size,
                spent * 1e3 / steps.max(1) as f64,
                100.0 * spent / seconds.max(1e-9)
            );
        }
    }
}

/// The number of processes a launcher started, from its environment, with the variable that
/// says so: Open MPI's, the PMI standard's (MPICH, Slurm), PMIx's. `None` when not launched.
fn launcher_size(var: impl Fn(&str) -> Option<String>) -> Option<(&'static str, usize)> {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"]
        .into_iter()
        .find_map(|name| var(name).and_then(|v| v.trim().parse::<usize>().ok()).map(|n| (name, n)))
}

/// The number of the launcher's processes on this machine (Open MPI's, MPICH's).
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
fn local_size(var: impl Fn(&str) -> Option<String>) -> Option<usize> {
    ["OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"]
        .into_iter()
        .find_map(|name| var(name).and_then(|v| v.trim().parse::<usize>().ok()))
}

/// Refuses a batch that does not split evenly across `size` workers, before anything is read
/// or written.
///
/// # Errors
/// Naming the nearest batch size that splits.
pub fn check_batch(batch: usize, size: usize, micro: usize) -> Result<()> {
    if let Err(why) = crate::core::collective::check_split(batch, size, micro) {
        bail!("{why}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn the_launchers_environment_gives_the_process_count() {
        assert_eq!(launcher_size(env(&[])), None);
        assert_eq!(launcher_size(env(&[("OMPI_COMM_WORLD_SIZE", "1")])), Some(("OMPI_COMM_WORLD_SIZE", 1)));
        assert_eq!(launcher_size(env(&[("PMI_SIZE", "4")])), Some(("PMI_SIZE", 4)));
        assert_eq!(launcher_size(env(&[("PMIX_SIZE", "x")])), None);
        assert_eq!(local_size(env(&[("OMPI_COMM_WORLD_LOCAL_SIZE", "2")])), Some(2));
    }

    #[test]
    fn a_batch_must_split_evenly() {
        assert!(check_batch(128, 2, 1).is_ok());
        assert!(check_batch(128, 2, 4).is_ok());
        let e = check_batch(100, 3, 1).unwrap_err().to_string();
        assert!(e.contains("--batch-size 100 does not split evenly across 3 workers") && e.contains("e.g. 102"), "{e}");
        let e = check_batch(100, 1, 3).unwrap_err().to_string();
        assert!(e.contains("does not split into 3 equal micro-batches") && e.contains("e.g. 102"), "{e}");
        let e = check_batch(100, 2, 3).unwrap_err().to_string();
        assert!(
            e.contains("3 equal micro-batches on each of 2 workers") && e.contains("multiple of 6 (e.g. 102)"),
            "{e}"
        );
    }
}
