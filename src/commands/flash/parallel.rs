//! Several cards written at once (`flash --parallel N`, the default when several nodes get
//! several cards).
//!
//! Cards are taken in node order, as today: the named `--device`s one per node, or, with
//! none named, each card inserted and confirmed gets the next node while the cards before
//! it are still being written. Each card is written and read back on its own thread;
//! customising the node (its plan, the cluster's token or key made by the first node) stays
//! on this thread, one node at a time, in node order, so that the cards are the same as
//! when written one after another.
//!
//! One decompression for all cards: the base is obtained once, before the first card
//! ([`pinode::pipeline::BaseImage`]: a compressed local image is decompressed once to a
//! sparse scratch file, a cached image is used in place), and every card reads that raw
//! file through its own overlay. Nothing per card reads the compressed download again: a
//! stream of compressed data cannot be read at several offsets at once, and decompressing it
//! once per card would multiply the CPU time by the number of cards. The raw file's pages
//! come from the page cache to all cards alike.
//!
//! One card's failure (pulled out, an I/O error, a read-back mismatch) ends its thread only:
//! the others go on, and the summary names the nodes to redo with the command to do it.
//! There is no question to retry a failed card here (the cards next to it are still being
//! written); `--serial` asks it.
//!
//! Memory: each card in flight holds at most
//! [`pinode::sink::card::CARD_BUFFER_BYTES`] (18 MiB) of buffers (the
//! writer's pool of 4 x 4 MiB, or the read-back's, never both; the 1 MiB head and 1 MiB of
//! zeros), plus its node's overlay (the changed boot-partition sectors: kilobytes to a few
//! MiB; with `cluster.airgap` the overlay holds the release files too, about 190 MiB for
//! v1.33). At most `N` (1–16, default [`DEFAULT_AT_ONCE`]) cards are in flight, lowered (and
//! said) to what fits [`pinode::pipeline::memory::BUDGET`] (1 GiB) when air-gap makes the
//! overlays large; the next node waits for a free slot. Bound: N x (18 MiB + the overlay), at
//! most about 1 GiB with air-gap, whatever the image size.
//!
//! A card's thread that panics (a bug) fails that card only, as an internal error: the
//! others go on and the summary is printed.

use std::sync::mpsc;

use crate::error::Error;
use crate::term::progress::MultiBars;
use pinode::device::discover::BlockDevice;
use pinode::profile::NodeConfig;
use pinode::sink::card::CardReport;

use super::target::{Choice, Source, Targets};
use super::{
    Batch, NodeResult, Outcome, Ran, customise, result, say_note, say_written, write_node,
};

/// Cards written at once unless `--parallel N` says otherwise: a USB hub with four readers,
/// 72 MiB of buffers.
pub const DEFAULT_AT_ONCE: usize = 4;

/// Whether a run writes its cards at once: several nodes, and not the single reader the
/// cards are swapped in (`--device` once for several nodes).
pub fn applies(devices: usize, nodes: usize) -> bool {
    nodes > 1 && devices != 1
}

/// One card's end: its node's index, the card, and what happened.
type Done = (usize, Box<BlockDevice>, Result<CardReport, Error>);

/// Writes the cards of `nodes`, up to `at_once` at a time; the results in node order.
/// An error choosing a card (a refusal, the base image named as a card) stops the run after
/// the cards in flight end, as it does one card at a time: it is the node's error in the
/// results, and [`Ran::stopped`], so that the summary still tells what was written.
pub(super) fn flash_all(
    batch: &Batch<'_>,
    nodes: &[&NodeConfig],
    targets: &mut Targets,
    source: &Source,
    at_once: usize,
) -> Ran {
    let out = batch.out;
    let bars = MultiBars::new(out.progress());
    let mut results: Vec<Option<NodeResult>> = vec![None; nodes.len()];
    let stopped = std::thread::scope(|scope| -> Option<Error> {
        let (done_tx, done_rx) = mpsc::channel::<Done>();
        let mut running = 0usize;
        let mut stopped = None;
        for (i, node) in nodes.iter().enumerate() {
            // A free slot first, then whatever else ended meanwhile.
            while running >= at_once.max(1) {
                let Ok(done) = done_rx.recv() else { break };
                running -= 1;
                ended(done, nodes, &mut results, targets, batch, &bars);
            }
            while let Ok(done) = done_rx.try_recv() {
                running -= 1;
                ended(done, nodes, &mut results, targets, batch, &bars);
            }
            // Questions go to stderr: no bar is drawn over them meanwhile.
            bars.hide();
            let choice = targets.choose(i, node);
            bars.show();
            let disk = match choice {
                Ok(Choice::Device(disk)) => disk,
                Ok(Choice::Skip) => {
                    results[i] = Some(result(node, Outcome::Skipped, None, None, None));
                    continue;
                }
                Ok(Choice::Abort) => break,
                Err(e) => {
                    let message = Some(e.to_string());
                    results[i] = Some(result(node, Outcome::Failed, None, None, message));
                    stopped = Some(e);
                    break;
                }
            };
            if let Err(e) = source.refuse(&disk) {
                let message = Some(e.to_string());
                results[i] = Some(result(node, Outcome::Failed, Some(&disk), None, message));
                stopped = Some(e);
                break;
            }
            let image = match customise(batch, node) {
                Ok(image) => image,
                Err(e) => {
                    failed(&bars, node, &e);
                    let message = Some(e.to_string());
                    results[i] = Some(result(node, Outcome::Failed, Some(&disk), None, message));
                    continue;
                }
            };
            targets.writing(&disk);
            let tx = done_tx.clone();
            let bars = bars.clone();
            scope.spawn(move || {
                let note =
                    |n: pinode::pipeline::card::CardNote<'_>| bars.suspend(|| say_note(out, n));
                // A bug in the writer fails this card only: the others go on, and the card
                // is said failed and freed (a panic would otherwise end the run with the
                // scope, the summary unprinted).
                let written = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    write_node(batch, &image, &disk, &bars, &note)
                }))
                .unwrap_or_else(|_| Err(Error::Internal("the card's writer stopped".into())));
                // The receiver lives until every thread of the scope has ended.
                let _ = tx.send((i, disk, written));
            });
            running += 1;
        }
        drop(done_tx);
        for done in done_rx {
            ended(done, nodes, &mut results, targets, batch, &bars);
        }
        stopped
    });
    let results = nodes
        .iter()
        .zip(results)
        .map(|(node, r)| r.unwrap_or_else(|| result(node, Outcome::NotReached, None, None, None)))
        .collect();
    Ran { results, stopped }
}

/// A card's write ended: its line, its result, and the card free again.
fn ended(
    (i, disk, written): Done,
    nodes: &[&NodeConfig],
    results: &mut [Option<NodeResult>],
    targets: &mut Targets,
    batch: &Batch<'_>,
    bars: &MultiBars,
) {
    let (Some(node), Some(slot)) = (nodes.get(i), results.get_mut(i)) else {
        return;
    };
    targets.done(&disk);
    *slot = Some(match written {
        Ok(report) => {
            bars.suspend(|| say_written(batch.out, node, &disk, &report));
            targets.remember(&disk, &node.hostname);
            result(node, Outcome::Written, Some(&disk), Some(report), None)
        }
        Err(e) => {
            failed(bars, node, &e);
            let message = Some(e.to_string());
            result(node, Outcome::Failed, Some(&disk), None, message)
        }
    });
}

fn failed(bars: &MultiBars, node: &NodeConfig, e: &Error) {
    bars.suspend(|| {
        eprintln!(
            "error: {}: {}",
            node.hostname,
            pinode::ui::terminal_safe(&e.to_string())
        )
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_several_nodes_on_several_cards_are_written_at_once() {
        assert!(applies(3, 3));
        assert!(applies(0, 3), "cards inserted one after another");
        assert!(!applies(1, 3), "one reader: the cards are swapped in");
        assert!(!applies(1, 1));
        assert!(!applies(0, 1));
    }
}
