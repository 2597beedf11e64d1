//! The export file: a whole gallery as one blob, for moving it between a
//! native store and a browser (`metricann export`, `MetricAnn.import`).

use super::*;

/// Blobs held in memory (what an export file unpacks to).
struct Unpacked(HashMap<String, Vec<u8>>);

impl BlobRead for Unpacked {
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.0.get(name).cloned())
    }

    fn read(&self, name: &str) -> Result<Option<Cow<'_, [u8]>>> {
        Ok(self.0.get(name).map(|b| Cow::Borrowed(b.as_slice())))
    }
}

impl Gallery {
    /// Every blob of the current state (manifest last), encoded afresh: the
    /// class pages hold only current records (stale ones are left out), and a
    /// class not yet in a page gets one.
    pub fn all_blobs(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let mut out = self.index.blobs()?;
        if let Some(head) = &self.head {
            out.push((HEAD_BLOB.to_string(), head.encode()));
        }
        let mut by_page: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for (&id, c) in &self.classes {
            let page = if self.pages.contains(c.page) {
                c.page
            } else {
                self.next_class_seq
            };
            by_page.entry(page).or_default().push(id);
        }
        let mut manifest = self.manifest();
        manifest.pages.clear();
        manifest.removed_classes.clear();
        manifest.next_class_seq = self.next_class_seq + 1;
        for (seq, ids) in by_page {
            let bytes = encode_page(&self.classes, &ids)?;
            manifest.pages.push(PageEntry {
                seq,
                bytes: bytes.len() as u64,
                records: ids.len() as u64,
            });
            out.push((page_blob(seq), bytes));
        }
        out.push((MANIFEST.to_string(), encode_manifest(&manifest)?));
        Ok(out)
    }

    /// The whole gallery as one byte file (see the module documentation).
    pub fn export_bytes(&self) -> Result<Vec<u8>> {
        let blobs = self.all_blobs()?;
        let total: usize = blobs.iter().map(|(n, b)| 12 + n.len() + b.len()).sum();
        let mut payload = Vec::with_capacity(4 + total);
        payload.extend_from_slice(&(blobs.len() as u32).to_le_bytes());
        for (name, bytes) in &blobs {
            payload.extend_from_slice(&(name.len() as u32).to_le_bytes());
            payload.extend_from_slice(name.as_bytes());
            payload.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            payload.extend_from_slice(bytes);
        }
        Ok(blob::seal(KIND_EXPORT, &payload))
    }

    /// Reads an export file: the gallery, and the change set that stores it
    /// (into an empty store: blob names are the exported ones). Any damage is an
    /// error; a gallery of another model is `ModelMismatch`.
    pub fn import_bytes(
        bytes: &[u8],
        expected_fingerprint: Option<&str>,
    ) -> Result<(Gallery, ChangeSet)> {
        const NAME: &str = "export";
        let payload = blob::open(NAME, KIND_EXPORT, bytes)?;
        let mut r = Reader {
            bytes: payload,
            pos: 0,
        };
        let count = r.u32()? as usize;
        let mut blobs: HashMap<String, Vec<u8>> = HashMap::new();
        let mut order = Vec::new();
        for _ in 0..count {
            let name_len = r.u32()? as usize;
            let name = std::str::from_utf8(r.take(name_len)?)
                .map_err(|_| Error::corrupt(NAME, "a blob name is not UTF-8"))?
                .to_string();
            if !blob::valid_name(&name) {
                return Err(Error::corrupt(NAME, format!("bad blob name {name:?}")));
            }
            let len = usize::try_from(r.u64()?)
                .map_err(|_| Error::corrupt(NAME, "blob length overflows"))?;
            let data = r.take(len)?.to_vec();
            if blobs.insert(name.clone(), data).is_some() {
                return Err(Error::corrupt(NAME, format!("blob {name:?} appears twice")));
            }
            order.push(name);
        }
        if r.pos != payload.len() {
            return Err(Error::corrupt(
                NAME,
                format!("{} bytes after the last blob", payload.len() - r.pos),
            ));
        }
        let store = Unpacked(blobs);
        let (gallery, _) = Gallery::open(&store, expected_fingerprint, OpenMode::Strict)?;
        let mut blobs = store.0;
        let mut cs = ChangeSet::new();
        // Only the blobs the manifest uses; the manifest last.
        let referenced: HashSet<String> = gallery.blob_names().into_iter().collect();
        for name in order {
            if name != MANIFEST
                && referenced.contains(&name)
                && let Some(b) = blobs.remove(&name)
            {
                cs.put(name, b);
            }
        }
        if let Some(m) = blobs.remove(MANIFEST) {
            cs.put(MANIFEST, m);
        }
        Ok((gallery, cs))
    }
}
