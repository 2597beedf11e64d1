//! Opening a stored gallery: the manifest, then the class pages (or format-1
//! class blobs), then the index, checked against each other.

use super::*;

impl Gallery {
    /// Opens the gallery stored in `blobs`.
    ///
    /// `expected_fingerprint`: the model about to be used; a gallery built by
    /// another model is refused with [`Error::ModelMismatch`] (`what` is
    /// `"gallery"`, or `"index segment <name>"` for a segment of another model).
    /// A missing manifest is [`Error::NotFound`]; a damaged manifest is
    /// [`Error::Corrupt`] in both modes (nothing can be read without it).
    pub fn open(
        blobs: &dyn BlobRead,
        expected_fingerprint: Option<&str>,
        mode: OpenMode,
    ) -> Result<(Gallery, Vec<Damage>)> {
        let (manifest, v1_classes, manifest_bytes) = read_manifest(blobs, expected_fingerprint)?;
        let skip = mode == OpenMode::SkipDamaged;
        let (index, damage) = Index::load(
            manifest.dim,
            &manifest.fingerprint,
            &manifest.index,
            blobs,
            skip,
        )?;
        let mut opening = Opening {
            index_damage: damage.len(),
            damage,
            gallery: Gallery::empty_from(&manifest, index, manifest_bytes),
            skip,
            unreadable: Vec::new(),
            records: Vec::new(),
            legacy_names: FxHashMap::default(),
            max_legacy_seq: 0,
        };
        opening.read_head(blobs, manifest.head.as_ref())?;
        opening.read_pages(blobs, &manifest.pages)?;
        opening.read_v1_classes(blobs, v1_classes)?;
        let mut removed = manifest.removed_classes;
        removed.sort_unstable();
        opening.keep_newest_records(&removed);
        opening.adopt_records()?;
        Ok(opening.finish())
    }

    /// A gallery with the manifest's settings and index, and no class yet.
    fn empty_from(manifest: &Manifest, index: Index, manifest_bytes: u64) -> Gallery {
        Gallery {
            next_class_id: manifest.next_class_id,
            next_vector_id: manifest.next_vector_id,
            next_class_seq: manifest.next_class_seq,
            manifest_bytes,
            ..Gallery::empty(manifest.fingerprint.clone(), manifest.dim, index)
        }
    }

    /// Takes in a class read at open, checking it against those already in;
    /// the class map takes it after. `all_indexed`: every class's vectors are
    /// known to be in the index, so this one's need no lookup. `claim`: what
    /// the class claims one by one in the owner and label tables (the caller
    /// builds a table at once when nothing in it is claimed twice). An
    /// inconsistency is the reason, for the caller to name the blob.
    fn adopt(
        &mut self,
        id: u64,
        class: &mut Class,
        skip: bool,
        all_indexed: bool,
        claim: Claims,
    ) -> std::result::Result<(), String> {
        // This runs for every class at open, and a class has a few examples:
        // comparing them pairwise costs no allocation.
        let ids = &class.vector_ids;
        let repeated = if ids.len() <= 16 {
            (1..ids.len())
                .find(|&i| ids[..i].contains(&ids[i]))
                .map(|i| ids[i])
        } else {
            let mut sorted = ids.clone();
            sorted.sort_unstable();
            sorted.windows(2).find(|w| w[0] == w[1]).map(|w| w[0])
        };
        if let Some(v) = repeated {
            return Err(format!("vector {v} belongs to two classes"));
        }
        // Vectors the index does not have: lost with a damaged segment (skip
        // mode), or an inconsistency (strict mode).
        if !all_indexed
            && let Some(&missing) = class.vector_ids.iter().find(|&&v| !self.index.contains(v))
        {
            if !skip {
                return Err(format!("vector {missing} is not in the index"));
            }
            class.vector_ids.retain(|&v| self.index.contains(v));
            self.dirty.insert(id);
        }
        // Claimed here only when the caller found a vector claimed twice;
        // taken back if the class is refused after all.
        let undo = |gallery: &mut Self, claimed: &[u64]| {
            for &v in claimed {
                gallery.owner.remove(v);
            }
            gallery.dirty.remove(&id);
        };
        let claimed = if claim.vectors {
            class.vector_ids.len()
        } else {
            0
        };
        for (i, &v) in class.vector_ids[..claimed].iter().enumerate() {
            if !self.owner.claim(v, id) {
                undo(self, &class.vector_ids[..i]);
                return Err(format!("vector {v} belongs to two classes"));
            }
        }
        if claim.label {
            // The class map is filled after every class is adopted: the
            // label is looked for among those given since open only.
            if self.by_label.get(&class.label, &BTreeMap::new()).is_some() {
                undo(self, &class.vector_ids[..claimed]);
                return Err(format!(
                    "label {:?} is used by another class too",
                    class.label
                ));
            }
            self.by_label.insert(&class.label, id);
        }
        Ok(())
    }
}

/// The manifest, checked against the model about to be used, with its
/// format-1 class list (empty for format 2) and its size.
fn read_manifest(
    blobs: &dyn BlobRead,
    expected_fingerprint: Option<&str>,
) -> Result<(Manifest, Vec<ClassEntry>, u64)> {
    let bytes = blobs.read(MANIFEST)?.ok_or_else(|| {
        Error::NotFound("gallery: there is no manifest (no gallery was created here)".into())
    })?;
    let (manifest, v1_classes) = decode_manifest(&bytes)?;
    if let Some(expected) = expected_fingerprint
        && expected != manifest.fingerprint
    {
        return Err(Error::ModelMismatch {
            what: "gallery".into(),
            expected: expected.to_string(),
            found: manifest.fingerprint.clone(),
        });
    }
    if manifest.dim == 0 {
        return Err(Error::corrupt(MANIFEST, "dimension 0"));
    }
    Ok((manifest, v1_classes, bytes.len() as u64))
}

/// Every class's vectors as (vector, class) pairs.
fn vector_pairs(records: &[(u64, Class)]) -> Vec<(u64, u64)> {
    records
        .iter()
        .flat_map(|(id, c)| c.vector_ids.iter().map(move |&v| (v, *id)))
        .collect()
}

/// A gallery being opened: what has been read so far, and what was damaged.
struct Opening {
    gallery: Gallery,
    damage: Vec<Damage>,
    /// How many of `damage` the index reported (its blobs are deleted on repair).
    index_damage: usize,
    skip: bool,
    /// Class blobs that could not be read (deleted on repair).
    unreadable: Vec<String>,
    /// Every record, oldest page first; a class's newest record is its
    /// current one. One vector of records sorted by class id (stably, so that
    /// of equal ids the newest comes last) instead of a map: a gallery of a
    /// million classes reads a million of them.
    records: Vec<(u64, Class)>,
    legacy_names: FxHashMap<u64, String>,
    max_legacy_seq: u64,
}

impl Opening {
    /// A damaged blob: noted and skipped in [`OpenMode::SkipDamaged`], the
    /// error otherwise.
    fn fail(&mut self, name: &str, e: Error) -> Result<()> {
        match e {
            Error::Corrupt { .. } | Error::ModelMismatch { .. } if self.skip => {
                self.damage.push(Damage::from_error(name, &e));
                self.unreadable.push(name.to_string());
                Ok(())
            }
            e => Err(e),
        }
    }

    /// The adapted head the manifest lists. Lost in skip mode, the gallery
    /// holds vectors no model can match until it is re-embedded.
    fn read_head(&mut self, blobs: &dyn BlobRead, entry: Option<&HeadEntry>) -> Result<()> {
        let Some(entry) = entry else {
            return Ok(());
        };
        let head = match blobs.read(HEAD_BLOB)? {
            Some(bytes) => AdaptedHead::decode(entry, &bytes),
            None => Err(Error::corrupt(
                HEAD_BLOB,
                "listed in the manifest but missing",
            )),
        };
        match head {
            Ok(head) => self.gallery.head = Some(head),
            Err(e) => self.fail(HEAD_BLOB, e)?,
        }
        Ok(())
    }

    fn read_pages(&mut self, blobs: &dyn BlobRead, pages: &[PageEntry]) -> Result<()> {
        let mut listed = pages.to_vec();
        listed.sort_by_key(|e| e.seq);
        for PageEntry {
            seq,
            bytes: size,
            records: count,
        } in listed
        {
            let name = page_blob(seq);
            let start = self.records.len();
            let read = read_listed(blobs, &name, size).and_then(|b| {
                let read = decode_page_into(&name, &b, &mut self.records)?;
                if read as u64 != count {
                    self.records.truncate(start);
                    return Err(Error::corrupt(
                        &name,
                        format!("{read} records, the manifest says {count}"),
                    ));
                }
                Ok(())
            });
            if let Err(e) = read {
                self.fail(&name, e)?;
                continue;
            }
            let page = &mut self.records[start..];
            let ids = page.iter().map(|(id, _)| *id).collect();
            self.gallery.pages.insert_loaded(seq, size, ids);
            for (_, class) in page {
                class.page = seq;
            }
        }
        Ok(())
    }

    /// Format-1 class blobs (page 0), after every page.
    fn read_v1_classes(&mut self, blobs: &dyn BlobRead, classes: Vec<ClassEntry>) -> Result<()> {
        for ClassEntry {
            id,
            seq,
            bytes: size,
        } in classes
        {
            self.max_legacy_seq = self.max_legacy_seq.max(seq);
            let name = class_blob(seq);
            match read_listed(blobs, &name, size).and_then(|b| decode_v1_class(&name, &b)) {
                Ok((found, class)) if found == id => {
                    self.gallery.legacy.push((name.clone(), size));
                    self.legacy_names.insert(id, name);
                    self.records.push((id, class));
                }
                Ok((found, _)) => {
                    let reason = format!("holds class {found}, the manifest says class {id}");
                    self.fail(&name, Error::corrupt(&name, reason))?
                }
                Err(e) => self.fail(&name, e)?,
            }
        }
        Ok(())
    }

    /// Keeps each class's newest record, unless the class was removed
    /// (`removed` sorted). In place: a million records are worth not copying.
    fn keep_newest_records(&mut self, removed: &[u64]) {
        let records = &mut self.records;
        records.sort_by_key(|(id, _)| *id);
        let mut kept = 0;
        for i in 0..records.len() {
            let (id, page) = (records[i].0, records[i].1.page);
            if records.get(i + 1).is_some_and(|(next, _)| *next == id) {
                self.gallery.pages.superseded(id);
            } else if page != 0 && removed.binary_search(&id).is_ok() {
                self.gallery.pages.loaded_removed(id, true);
            } else {
                records.swap(kept, i);
                kept += 1;
            }
        }
        records.truncate(kept);
    }

    /// Checks the records against the index and each other, and builds the
    /// class, owner and label tables.
    ///
    /// Every class's vectors as (vector, class) pairs, sorted once, say
    /// whether every vector is in the index (asked once for all; only when
    /// some are not does each class look at its own), and, when no vector is
    /// claimed twice, they are the owner table, so that the classes need not
    /// claim their vectors one by one.
    fn adopt_records(&mut self) -> Result<()> {
        let owners = Owners::from_pairs(vector_pairs(&self.records));
        let all_indexed = match &owners {
            Some(owners) => self.gallery.index.contains_all(owners.base_vectors()),
            None => {
                let mut vectors: Vec<u64> = vector_pairs(&self.records)
                    .into_iter()
                    .map(|(v, _)| v)
                    .collect();
                vectors.sort_unstable();
                self.gallery.index.contains_all(vectors)
            }
        };
        let labels = Labels::from_classes(&self.records);
        let claim = Claims {
            vectors: owners.is_none(),
            label: labels.is_none(),
        };
        let changed = self.adopt_each(all_indexed, claim)?;
        if let Some(owners) = owners {
            self.gallery.owner = if changed {
                Owners::from_pairs(vector_pairs(&self.records)).ok_or_else(|| {
                    Error::Internal("a vector is claimed twice after the check".into())
                })?
            } else {
                owners
            };
        }
        if let Some(labels) = labels {
            self.gallery.by_label = if changed {
                Labels::from_classes(&self.records).ok_or_else(|| {
                    Error::Internal("a label is used twice after the check".into())
                })?
            } else {
                labels
            };
        }
        // Ascending ids: built in one pass.
        self.gallery.classes = std::mem::take(&mut self.records).into_iter().collect();
        Ok(())
    }

    /// Adopts every record; whether a class was dropped or lost vectors (the
    /// tables built at once must then be rebuilt).
    fn adopt_each(&mut self, all_indexed: bool, claim: Claims) -> Result<bool> {
        let mut changed = false;
        let mut failed = None;
        let (gallery, damage, skip) = (&mut self.gallery, &mut self.damage, self.skip);
        let legacy_names = &self.legacy_names;
        self.records.retain_mut(|(id, class)| {
            if failed.is_some() {
                return false;
            }
            let page = class.page;
            let examples = class.vector_ids.len();
            let adopted = gallery.adopt(*id, class, skip, all_indexed, claim);
            changed |= class.vector_ids.len() != examples;
            let Err(reason) = adopted else {
                gallery.pages.count_live(page);
                return true;
            };
            changed = true;
            let name = match legacy_names.get(id) {
                Some(name) if page == 0 => name.clone(),
                _ => page_blob(page),
            };
            let e = Error::corrupt(&name, reason);
            if skip {
                // A consistent page with one inconsistent record: drop the
                // record (as removed), keep the page and the rest.
                damage.push(Damage::from_error(&name, &e));
                gallery.pages.loaded_removed(*id, page != 0);
            } else {
                failed = Some(e);
            }
            false
        });
        match failed {
            Some(e) => Err(e),
            None => Ok(changed),
        }
    }

    /// The opened gallery: counters ahead of everything stored, orphaned
    /// vectors of damaged classes deleted, and the damage.
    fn finish(mut self) -> (Gallery, Vec<Damage>) {
        let gallery = &mut self.gallery;
        // Format-1 classes move into a page with the next mutation.
        if !gallery.legacy.is_empty() {
            gallery.dirty.extend(gallery.classes.keys().copied());
        }
        // Counters must stay ahead of everything stored, whatever the manifest says.
        let max_vector = gallery.index.max_id().unwrap_or(0);
        gallery.next_vector_id = gallery.next_vector_id.max(max_vector + 1);
        if let Some((&max_class, _)) = gallery.classes.last_key_value() {
            gallery.next_class_id = gallery.next_class_id.max(max_class + 1);
        }
        let max_seq = gallery
            .pages
            .seqs()
            .max()
            .unwrap_or(0)
            .max(self.max_legacy_seq);
        gallery.next_class_seq = gallery.next_class_seq.max(max_seq + 1);
        if !self.damage.is_empty() {
            // Vectors whose class record was lost belong to nobody: delete them.
            let orphans: Vec<u64> = gallery
                .index
                .ids()
                .into_iter()
                .filter(|&id| !gallery.owner.contains(id))
                .collect();
            gallery.index.remove(&orphans);
            gallery.pending_deletes = self.damage[..self.index_damage]
                .iter()
                .map(|d| d.blob.clone())
                .chain(self.unreadable)
                .filter(|n| n != MANIFEST)
                .collect();
        }
        gallery.max_examples = gallery
            .classes
            .values()
            .map(|c| c.vector_ids.len())
            .max()
            .unwrap_or(0);
        gallery.empty_classes = gallery
            .classes
            .values()
            .filter(|c| c.vector_ids.is_empty())
            .count();
        (self.gallery, self.damage)
    }
}
