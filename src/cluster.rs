//! Data-parallel training across processes and machines: the [`Collective`] of the MPI ranks
//! that `mpirun -n N` (or Slurm's `srun`) started, through Open MPI and rsmpi (the `mpi`
//! feature; README, "More than one machine").
//!
//! A sum is a reduce-scatter and an all-gather, both done by MPI's own collectives
//! (`MPI_Alltoallv`, then `MPI_Allgatherv`): rank `r` receives every rank's copy of its part
//! `r` of the buffer ([`part`]), adds them in rank order in f64 ([`rank_order_sum`]) and
//! rounds once, then every rank gathers the summed parts. The arithmetic is ours, never the
//! MPI library's, so a sum is the same bits on every rank and from run to run whatever
//! algorithm or network MPI uses, and equal to a [`LocalGroup`](crate::core::collective::LocalGroup)'s
//! of the same size. Each rank sends and receives (N − 1)/N of the buffer in each phase, the
//! ring all-reduce's volume.

use crate::core::collective::{Collective, CollectiveError, part, rank_order_sum};
use mpi::Count;
use mpi::datatype::{Equivalence, Partition, PartitionMut};
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

/// MPI, started once per process: dropping it finalizes MPI. Keep it for as long as any
/// [`Ranks`] is in use.
pub struct Cluster {
    universe: Universe,
}

impl Cluster {
    /// Starts MPI (the launcher's environment tells it the world); `None` if MPI was already
    /// started in this process.
    pub fn start() -> Option<Cluster> {
        let (universe, _) = mpi::initialize_with_threading(mpi::Threading::Funneled)?;
        Some(Cluster { universe })
    }

    /// This process's rank and the world size.
    pub fn rank_and_size(&self) -> (usize, usize) {
        let world = self.universe.world();
        (world.rank() as usize, world.size() as usize)
    }

    /// The world's ranks as a [`Collective`], for a trainer to join (`Trainer::join`).
    pub fn ranks(&self) -> Ranks {
        let world = self.universe.world();
        Ranks { rank: world.rank() as usize, size: world.size() as usize, world }
    }

    /// Ends every rank's process at once with exit status `code` (after a failure on this
    /// rank: the others may be waiting in a sum that this one will never join).
    pub fn abort(&self, code: i32) -> ! {
        self.universe.world().abort(code)
    }
}

/// The MPI ranks of the world, one per process.
pub struct Ranks {
    world: SimpleCommunicator,
    rank: usize,
    size: usize,
}

// SAFETY: the communicator is a handle to MPI_COMM_WORLD, which outlives every `Ranks` (it
// is freed by MPI_Finalize when the `Cluster` drops). MPI is started with
// `Threading::Funneled`, and a `Ranks` is moved, never shared (`Collective` is Send, not
// Sync): its calls come from the one thread that holds it, the process's main thread in `vae`.
unsafe impl Send for Ranks {}

impl Ranks {
    /// Sums `values` over the ranks: reduce-scatter in rank order, then all-gather.
    fn sum<T: Equivalence + Copy + Default>(
        &mut self,
        values: &mut [T],
        wide: impl Fn(T) -> f64,
        narrow: impl Fn(f64) -> T,
    ) {
        let n = self.size;
        let parts: Vec<_> = (0..n).map(|r| part(values.len(), r, n)).collect();
        let counts: Vec<Count> = parts.iter().map(|p| p.len() as Count).collect();
        let displs: Vec<Count> = parts.iter().map(|p| p.start as Count).collect();
        // Every rank's copy of my part, rank after rank.
        let mine = parts[self.rank].len();
        let mut copies = vec![T::default(); mine * n];
        let copy_displs: Vec<Count> = (0..n).map(|r| (r * mine) as Count).collect();
        {
            let send = Partition::new(&*values, &counts[..], &displs[..]);
            let mut recv = PartitionMut::new(&mut copies[..], vec![mine as Count; n], &copy_displs[..]);
            self.world.all_to_all_varcount_into(&send, &mut recv);
        }
        let summed: Vec<T> =
            (0..mine).map(|i| narrow(rank_order_sum((0..n).map(|r| wide(copies[r * mine + i]))))).collect();
        let mut all = PartitionMut::new(values, &counts[..], &displs[..]);
        self.world.all_gather_varcount_into(&summed[..], &mut all);
    }
}

impl Collective for Ranks {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    // MPI's default error handler ends the job on any communication failure (a rank that
    // died included: the launcher then stops every rank), so these never return an error.
    fn sum_f32(&mut self, values: &mut [f32]) -> Result<(), CollectiveError> {
        self.sum(values, |v| v as f64, |s| s as f32);
        Ok(())
    }
    fn sum_f64(&mut self, values: &mut [f64]) -> Result<(), CollectiveError> {
        self.sum(values, |v| v, |s| s);
        Ok(())
    }
    fn gather_u64(&mut self, value: u64) -> Result<Vec<u64>, CollectiveError> {
        let mut all = vec![0u64; self.size];
        self.world.all_gather_into(&value, &mut all[..]);
        Ok(all)
    }
}
