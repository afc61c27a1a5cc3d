//! Recovery: replaying the write-ahead log at startup, truncating a torn
//! tail of the last segment, and refusing corruption anywhere else.

use super::*;

/// The log as recovery rebuilds it, record by record, with the in-memory
/// model's semantics.
///
/// Segments deleted by compaction held only entries covered by the newest
/// snapshot, so the rebuilt log may lack entries at or below that snapshot's
/// index (and show gaps there while replaying); above it, it is exact.
/// Contiguity is therefore checked once, at the end, above the snapshot.
struct Replay<C> {
    hard_state: HardState,
    /// The highest snapshot marker seen.
    floor: u64,
    /// The newest snapshot file's index and term (0 without one).
    final_index: u64,
    final_term: Term,
    entries: BTreeMap<u64, Entry<C>>,
}

impl<C> Replay<C> {
    fn apply(&mut self, rec: RecordIn<C>) -> Result<(), String> {
        match rec {
            RecordIn::HardState(hs) => self.hard_state = hs,
            RecordIn::Truncate(from) => {
                self.entries.split_off(&from.0);
            }
            RecordIn::SnapshotMarker(index, term) => {
                if index.0 == self.final_index && term != self.final_term {
                    return Err(format!(
                        "the log records a snapshot at index {index} of term {term} but the snapshot file has term {}",
                        self.final_term
                    ));
                }
                if index.0 > self.final_index {
                    return Err(format!(
                        "the log records a snapshot at index {index} but the newest snapshot file covers only {}",
                        self.final_index
                    ));
                }
                self.floor = self.floor.max(index.0);
                // Only the retain step: when a snapshot also discarded the
                // entries above it, an explicit `Truncate(0)` follows.
                self.entries = self.entries.split_off(&(index.0 + 1));
            }
            RecordIn::Entries(batch) => {
                for e in batch.into_iter().filter(|e| e.index.0 > self.floor) {
                    if let Some((&last, _)) = self.entries.last_key_value() {
                        if e.index.0 <= last {
                            return Err(format!(
                                "entry {} overwrites the stored log (last {last}) without a truncation",
                                e.index
                            ));
                        }
                    }
                    self.entries.insert(e.index.0, e);
                }
            }
        }
        Ok(())
    }

    /// Applies the newest snapshot file (whose marker may not have been
    /// logged before a crash) and checks the log above it is contiguous.
    fn finish(mut self) -> Result<(HardState, Vec<Entry<C>>), String> {
        let base = self.final_index;
        self.entries = self.entries.split_off(&(base + 1));
        if let Some((&first, _)) = self.entries.first_key_value() {
            if first != base + 1 {
                if self.floor < base {
                    // The snapshot was installed but a crash came before its
                    // marker: the model discards a log that does not follow it.
                    self.entries.clear();
                } else {
                    return Err(format!(
                        "log gap: the log after index {base} starts at {first}"
                    ));
                }
            }
        }
        let mut out = Vec::with_capacity(self.entries.len());
        for (expected, (i, e)) in (base + 1..).zip(self.entries) {
            if i != expected {
                return Err(format!("log gap: entry {i} follows entry {}", expected - 1));
            }
            out.push(e);
        }
        Ok((self.hard_state, out))
    }
}

impl<C: Serialize + DeserializeOwned> FileStorage<C> {
    /// Replays segment `seq` at `path`; returns its segment record and where
    /// its records end, or `None` when it was an empty file torn at creation
    /// (then deleted).
    fn replay_segment(
        &mut self,
        seq: u64,
        path: &Path,
        is_last: bool,
        replay: &mut Replay<C>,
    ) -> Result<Option<(Segment, u64)>, StorageError> {
        let bytes = fs::read(path).map_err(io_err(path))?;
        if bytes.len() < SEGMENT_MAGIC.len() || bytes[..SEGMENT_MAGIC.len()] != SEGMENT_MAGIC[..] {
            if is_last && bytes.len() < SEGMENT_MAGIC.len() && SEGMENT_MAGIC.starts_with(&bytes) {
                tracing::warn!(file = %path.display(), "removing a log segment torn at creation");
                fs::remove_file(path).map_err(io_err(path))?;
                return Ok(None);
            }
            return Err(corrupt(
                path,
                0,
                "not a log segment (bad header)".to_owned(),
            ));
        }
        let mut off = SEGMENT_MAGIC.len();
        let mut max_entry = 0;
        while off < bytes.len() {
            match frame_at(&bytes, off) {
                Ok((payload, next)) => {
                    let rec: RecordIn<C> = postcard::from_bytes(payload).map_err(|e| {
                        corrupt(
                            path,
                            off,
                            format!("record has a valid checksum but does not decode: {e}"),
                        )
                    })?;
                    match &rec {
                        RecordIn::Entries(batch) => {
                            if let Some(l) = batch.last() {
                                max_entry = max_entry.max(l.index.0);
                            }
                        }
                        RecordIn::Truncate(from) => {
                            let keep = from.0.saturating_sub(1);
                            max_entry = max_entry.min(keep);
                            for s in &mut self.segments {
                                s.max_entry = s.max_entry.min(keep);
                            }
                        }
                        _ => {}
                    }
                    replay
                        .apply(rec)
                        .map_err(|reason| corrupt(path, off, reason))?;
                    off = next;
                }
                Err(_) if is_last && bytes[off..].iter().all(|&b| b == 0) => {
                    // The zeros kept ahead of the records (see `active.rs`).
                    break;
                }
                Err(bad) => {
                    self.torn_tail(path, &bytes, off, &bad, is_last)?;
                    break;
                }
            }
        }
        let segment = Segment {
            seq,
            path: path.to_owned(),
            max_entry,
        };
        Ok(Some((segment, off.min(bytes.len()) as u64)))
    }

    /// Handles a bad record at `off`: truncates a torn tail, or reports
    /// corruption.
    fn torn_tail(
        &self,
        path: &Path,
        bytes: &[u8],
        off: usize,
        bad: &Bad,
        is_last: bool,
    ) -> Result<(), StorageError> {
        if !is_last {
            return Err(corrupt(
                path,
                off,
                format!("{} in a segment that is not the last one", bad.describe()),
            ));
        }
        if let Some(p) = valid_record_after(bytes, off) {
            return Err(corrupt(
                path,
                off,
                format!(
                    "{}, followed by a valid record at offset {p}",
                    bad.describe()
                ),
            ));
        }
        tracing::warn!(
            file = %path.display(),
            offset = off,
            dropped_bytes = bytes.len() - off,
            reason = %bad.describe(),
            "truncating a torn tail of unacknowledged log records"
        );
        let f = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io_err(path))?;
        f.set_len(off as u64).map_err(io_err(path))?;
        if self.always() {
            f.sync_all().map_err(|source| StorageError::Fsync {
                path: path.to_owned(),
                source,
            })?;
        }
        Ok(())
    }

    pub(super) fn load_inner(&mut self) -> Result<Stored<C>, StorageError> {
        self.active = None;
        self.segments.clear();
        let mut segs = Vec::new();
        let mut snaps = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io_err(&self.dir))? {
            let entry = entry.map_err(io_err(&self.dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(seq) = parse_segment_name(name) {
                segs.push((seq, entry.path()));
            } else if let Some(index) = parse_snapshot_name(name) {
                snaps.push((index, entry.path()));
            } else if is_snapshot_tmp(name) {
                tracing::warn!(file = %entry.path().display(), "removing a snapshot left half-written by a crash");
                fs::remove_file(entry.path()).map_err(io_err(&entry.path()))?;
            }
        }
        segs.sort_unstable();
        snaps.sort_unstable();

        let snapshot = match snaps.last() {
            Some((_, p)) => Some(snapshot_file::read(p)?),
            None => None,
        };
        if let Some((_, p)) = snaps.last() {
            self.snapshot_path = Some(p.clone());
        }
        for (_, old) in snaps.iter().rev().skip(1) {
            if let Err(e) = fs::remove_file(old) {
                tracing::warn!(file = %old.display(), error = %e, "cannot remove old snapshot");
            }
        }
        for w in segs.windows(2) {
            if w[1].0 != w[0].0 + 1 {
                return Err(corrupt(
                    &w[1].1,
                    0,
                    format!("log segment {} is missing before it", w[0].0 + 1),
                ));
            }
        }
        if segs.is_empty() {
            if let Some((_, p)) = snaps.last() {
                return Err(corrupt(
                    p,
                    0,
                    "a snapshot exists but the log is missing".to_owned(),
                ));
            }
        }

        let final_index = snapshot.as_ref().map_or(0, |s| s.meta.last_index.0);
        let mut replay = Replay {
            hard_state: HardState::default(),
            floor: 0,
            final_index,
            final_term: snapshot.as_ref().map_or(Term(0), |s| s.meta.last_term),
            entries: BTreeMap::new(),
        };
        let count = segs.len();
        let mut records_end = 0;
        for (k, (seq, path)) in segs.iter().enumerate() {
            if let Some((seg, end)) =
                self.replay_segment(*seq, path, k + 1 == count, &mut replay)?
            {
                self.segments.push(seg);
                records_end = end;
            }
        }
        let gap_file = self
            .segments
            .last()
            .map_or_else(|| self.dir.clone(), |s| s.path.clone());
        let (hard_state, entries) = replay.finish().map_err(|reason| StorageError::Corrupt {
            file: gap_file,
            offset: 0,
            reason,
        })?;

        self.hard_state = hard_state;
        self.shape = LogShape {
            snapshot: snapshot
                .as_ref()
                .map(|s| (s.meta.last_index, s.meta.last_term)),
            range: match (entries.first(), entries.last()) {
                (Some(f), Some(l)) => Some((f.index.0, l.index.0)),
                _ => None,
            },
        };
        if let Some(last) = self.segments.last() {
            let path = last.path.clone();
            let file = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(io_err(&path))?;
            let allocated = file.metadata().map_err(io_err(&path))?.len();
            self.active = Some(ActiveSegment::new(file, records_end, allocated));
        } else {
            let seq = segs.last().map_or(1, |(s, _)| *s);
            self.start_segment(seq)?;
        }
        Ok(Stored {
            hard_state,
            snapshot,
            entries,
            initial_membership: Membership::default(),
        })
    }
}
