//! Rebuilding a gallery with another model from the enrollment images its
//! classes kept.
//!
//! The embedding is the caller's: in the browser it awaits the GPU, which a
//! synchronous callback cannot do, so [`Reembedding`] hands out one class at a
//! time and [`Gallery::reembed`] is the same loop for callers that embed
//! synchronously.

use super::{ClassInfo, Gallery, GalleryConfig};
use crate::blob::ChangeSet;
use crate::{Error, Result};

/// A gallery being rebuilt class by class, from [`Gallery::start_reembed`].
pub struct Reembedding<'a> {
    /// By label, with the images each kept.
    classes: Vec<(ClassInfo, &'a [Vec<u8>])>,
    done: usize,
    gallery: Gallery,
    auto_maintain: bool,
}

impl Gallery {
    /// The gallery rebuilt for the model of `config`: every class, with its
    /// label and metadata, enrolled again from its kept images, which `embed`
    /// turns into one vector each. Returns the new gallery and the change set
    /// that stores all of it, to replace the stored gallery whole.
    ///
    /// A class that kept no images is [`Error::BadInput`] before anything is
    /// embedded. Examples enrolled without their images are not carried over.
    pub fn reembed(
        &self,
        config: GalleryConfig,
        mut embed: impl FnMut(&str, &[Vec<u8>]) -> Result<Vec<Vec<f32>>>,
    ) -> Result<(Gallery, ChangeSet)> {
        let mut rebuild = self.start_reembed(config)?;
        while let Some((label, images)) = rebuild.next_class() {
            let vectors = embed(label, images)?;
            rebuild.enroll(&vectors)?;
        }
        rebuild.finish()
    }

    /// [`Gallery::reembed`] one step at a time, for an `embed` that must
    /// await: take [`Reembedding::next_class`], embed its images, hand the
    /// vectors to [`Reembedding::enroll`], and [`Reembedding::finish`] when
    /// there is no next class.
    pub fn start_reembed(&self, config: GalleryConfig) -> Result<Reembedding<'_>> {
        let infos = self.classes();
        if let Some(c) = infos.iter().find(|c| !c.has_images) {
            // Names the JS option: the browser is where re-embedding happens.
            return Err(Error::BadInput(format!(
                "cannot re-embed: class {:?} kept no enrollment images (enroll with keepImages: \
                 true); nothing was changed",
                c.label
            )));
        }
        let mut classes = Vec::with_capacity(infos.len());
        for info in infos {
            let images = self.class_images(&info.label)?;
            classes.push((info, images));
        }
        // Enrollments seal and merge as they go, so that the rebuilt gallery
        // is stored as graphs, not as one growing chunk per class.
        let (mut gallery, _) = Gallery::create(config)?;
        gallery.set_auto_maintain(true);
        Ok(Reembedding {
            classes,
            done: 0,
            gallery,
            auto_maintain: self.auto_maintain(),
        })
    }
}

impl<'a> Reembedding<'a> {
    /// The label and kept images of the class to embed next; `None` once
    /// every class is enrolled. The same class until it is enrolled.
    pub fn next_class(&self) -> Option<(&str, &'a [Vec<u8>])> {
        self.classes
            .get(self.done)
            .map(|(info, images)| (info.label.as_str(), *images))
    }

    /// Enrolls the next class with `vectors`, one per kept image, in order.
    pub fn enroll(&mut self, vectors: &[Vec<f32>]) -> Result<()> {
        let Some((info, images)) = self.classes.get(self.done) else {
            return Err(Error::Internal(
                "re-embedding: every class is enrolled".into(),
            ));
        };
        if vectors.len() != images.len() {
            return Err(Error::Internal(format!(
                "re-embedding class {:?}: {} vectors for {} images",
                info.label,
                vectors.len(),
                images.len()
            )));
        }
        // The change sets of single enrollments are not kept: `finish`
        // encodes the whole result afresh.
        self.gallery
            .enroll(&info.label, vectors, info.metadata.clone(), images.to_vec())?;
        self.done += 1;
        Ok(())
    }

    /// The rebuilt gallery, maintaining itself as the old one did, and every
    /// blob of it.
    pub fn finish(self) -> Result<(Gallery, ChangeSet)> {
        if let Some((info, _)) = self.classes.get(self.done) {
            return Err(Error::Internal(format!(
                "re-embedding: class {:?} was never enrolled",
                info.label
            )));
        }
        let mut gallery = self.gallery;
        gallery.set_auto_maintain(self.auto_maintain);
        let mut all = ChangeSet::new();
        for (name, bytes) in gallery.all_blobs()? {
            all.put(name, bytes);
        }
        Ok((gallery, all))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;
    use crate::blob::BlobRead;
    use crate::gallery::{OpenMode, SegmentKind};
    use crate::index::IndexConfig;

    const DIM: usize = 8;

    fn config(fingerprint: &str, growing_capacity: usize) -> GalleryConfig {
        GalleryConfig {
            dim: DIM,
            fingerprint: fingerprint.into(),
            index: IndexConfig {
                growing_capacity,
                merge_factor: 2,
                ..Default::default()
            },
            head: None,
        }
    }

    /// A stand-in for a model: an "image" is one byte, the axis its vector
    /// points along; `shift` makes another model put it on another axis.
    fn model(shift: usize) -> impl Fn(&[u8]) -> Vec<f32> {
        move |image| {
            let mut v = vec![0.0; DIM];
            v[(image[0] as usize + shift) % DIM] = 1.0;
            v[(image[0] as usize + shift + 1) % DIM] = 0.1 * image.len() as f32;
            v
        }
    }

    fn embed_all(shift: usize) -> impl FnMut(&str, &[Vec<u8>]) -> Result<Vec<Vec<f32>>> {
        let embed = model(shift);
        move |_, images| Ok(images.iter().map(|i| embed(i)).collect())
    }

    /// A class to enroll: label, images, metadata.
    type Class<'a> = (&'a str, &'a [&'a [u8]], Option<serde_json::Value>);

    /// Enrolls `classes` with model 0, keeping the images.
    fn gallery_of(classes: &[Class]) -> Gallery {
        let (mut g, _) = Gallery::create(config("model-a", 1024)).unwrap();
        let embed = model(0);
        for (label, images, metadata) in classes {
            let vectors: Vec<Vec<f32>> = images.iter().map(|i| embed(i)).collect();
            let kept = images.iter().map(|i| i.to_vec()).collect();
            g.enroll(label, &vectors, metadata.clone(), kept).unwrap();
        }
        g
    }

    fn animals() -> Gallery {
        gallery_of(&[
            ("dog", &[&[2], &[2, 2]], Some(json!({"legs": 4}))),
            ("cat", &[&[0]], None),
            ("emu", &[&[4], &[4, 4], &[4, 4, 4]], Some(json!("bird"))),
        ])
    }

    #[derive(Default)]
    struct Blobs(HashMap<String, Vec<u8>>);

    impl BlobRead for Blobs {
        fn get(&self, name: &str) -> Result<Option<Vec<u8>>> {
            Ok(self.0.get(name).cloned())
        }
    }

    #[test]
    fn labels_metadata_examples_and_images_carry_over_to_the_new_model() {
        let old = animals();
        let mut asked = Vec::new();
        let mut embed = embed_all(3);
        let (new, _) = old
            .reembed(config("model-b", 1024), |label, images| {
                asked.push((label.to_string(), images.to_vec()));
                embed(label, images)
            })
            .unwrap();
        assert_eq!((new.fingerprint(), new.dim()), ("model-b", DIM));
        assert_eq!(
            old.fingerprint(),
            "model-a",
            "the old gallery is left as it was"
        );
        assert_eq!(new.classes(), old.classes());
        for c in old.classes() {
            assert_eq!(
                new.class_images(&c.label).unwrap(),
                old.class_images(&c.label).unwrap()
            );
        }
        let labels: Vec<&str> = asked.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(labels, ["cat", "dog", "emu"], "once per class, by label");
        assert_eq!(asked[1].1, [vec![2], vec![2, 2]]);
    }

    #[test]
    fn a_search_with_the_new_model_finds_each_class() {
        let (new, _) = animals()
            .reembed(config("model-b", 1024), embed_all(3))
            .unwrap();
        let embed = model(3);
        for (query, label) in [(&[0u8][..], "cat"), (&[2, 2], "dog"), (&[4], "emu")] {
            let found = new.search(&embed(query), 1, None).unwrap();
            assert_eq!(found.matches[0].label, label);
            assert!(found.matches[0].score > 0.99, "{found:?}");
        }
        // The old model's vectors are gone: its "cat" is the new model's "emu".
        let found = new.search(&model(0)(&[0]), 1, None).unwrap();
        assert_eq!(found.matches[0].label, "emu");
    }

    #[test]
    fn the_change_set_stores_the_whole_gallery() {
        let (new, all) = animals()
            .reembed(config("model-b", 1024), embed_all(3))
            .unwrap();
        assert!(all.deletes.is_empty());
        let mut names: Vec<String> = all.puts.iter().map(|(n, _)| n.clone()).collect();
        names.sort();
        let mut expected = new.blob_names();
        expected.sort();
        assert_eq!(names, expected);
        let blobs = Blobs(all.puts.into_iter().collect());
        let (back, damage) = Gallery::open(&blobs, Some("model-b"), OpenMode::Strict).unwrap();
        assert!(damage.is_empty());
        assert_eq!(back.classes(), new.classes());
        assert_eq!(back.class_images("emu").unwrap().len(), 3);
        let found = back.search(&model(3)(&[2]), 1, None).unwrap();
        assert_eq!(found.matches[0].label, "dog");
    }

    #[test]
    fn a_class_that_kept_no_images_is_refused_before_anything_is_embedded() {
        let mut old = animals();
        old.enroll("bee", &[model(0)(&[6])], None, Vec::new())
            .unwrap();
        let before = old.classes();
        let mut calls = 0;
        let err = old
            .reembed(config("model-b", 1024), |_, _| {
                calls += 1;
                Ok(Vec::new())
            })
            .unwrap_err();
        assert_eq!(calls, 0);
        assert!(matches!(err, Error::BadInput(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            Error::BadInput(
                "cannot re-embed: class \"bee\" kept no enrollment images (enroll with \
                 keepImages: true); nothing was changed"
                    .into()
            )
            .to_string()
        );
        assert_eq!(old.classes(), before);
        assert_eq!(old.fingerprint(), "model-a");
    }

    #[test]
    fn examples_enrolled_without_their_images_are_not_carried_over() {
        let mut old = gallery_of(&[("cat", &[&[0]], None)]);
        old.enroll("cat", &[model(0)(&[0, 0])], None, Vec::new())
            .unwrap();
        assert_eq!(old.classes()[0].examples, 2);
        let (new, _) = old.reembed(config("model-b", 1024), embed_all(1)).unwrap();
        assert_eq!(new.classes()[0].examples, 1);
    }

    #[test]
    fn an_embedding_error_is_the_result() {
        let old = animals();
        let err = old
            .reembed(config("model-b", 1024), |label, images| {
                if label == "dog" {
                    return Err(Error::BadImage {
                        name: "kept image 0".into(),
                        reason: "truncated".into(),
                    });
                }
                embed_all(3)(label, images)
            })
            .unwrap_err();
        assert!(matches!(err, Error::BadImage { .. }), "{err:?}");
        let err = old
            .reembed(config("model-b", 1024), |_, _| Ok(vec![vec![1.0; DIM]]))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("class \"dog\": 1 vectors for 2 images"),
            "{err}"
        );
    }

    #[test]
    fn an_empty_gallery_becomes_an_empty_gallery_of_the_new_model() {
        let (old, _) = Gallery::create(config("model-a", 1024)).unwrap();
        let (new, all) = old
            .reembed(config("model-b", 1024), |_, _| unreachable!("no class"))
            .unwrap();
        assert!(new.is_empty());
        assert_eq!(new.fingerprint(), "model-b");
        assert!(all.manifest().is_some());
    }

    #[test]
    fn the_rebuilt_gallery_is_sealed_and_maintains_itself_as_the_old_one_did() {
        let mut old = animals();
        old.set_auto_maintain(false);
        let (new, _) = old.reembed(config("model-b", 2), embed_all(3)).unwrap();
        assert!(!new.auto_maintain());
        assert!(
            new.stats()
                .segments
                .iter()
                .any(|s| s.kind != SegmentKind::Growing),
            "{:?}",
            new.stats().segments
        );
        let (new, _) = animals()
            .reembed(config("model-b", 2), embed_all(3))
            .unwrap();
        assert!(new.auto_maintain());
    }

    #[test]
    fn the_steps_hand_out_each_class_until_it_is_enrolled() {
        let old = animals();
        let mut rebuild = old.start_reembed(config("model-b", 1024)).unwrap();
        assert_eq!(rebuild.next_class().unwrap().0, "cat");
        assert_eq!(rebuild.next_class().unwrap().0, "cat");
        rebuild.enroll(&[model(3)(&[0])]).unwrap();
        assert_eq!(rebuild.next_class().unwrap().0, "dog");
        let early = old
            .start_reembed(config("model-b", 1024))
            .unwrap()
            .finish()
            .unwrap_err();
        assert!(matches!(early, Error::Internal(_)), "{early:?}");
    }

    #[test]
    fn an_adapted_head_travels_with_the_gallery_and_survives_damage_only_in_skip_mode() {
        use crate::gallery::{AdaptedHead, HEAD_BLOB, OpenMode};
        let head = AdaptedHead {
            base_fingerprint: "model-a".into(),
            weights: vec![0.25; 12],
        };
        let adapted = GalleryConfig {
            head: Some(head.clone()),
            ..config("model-a+head", 1024)
        };
        let (mut new, all) = animals().reembed(adapted, embed_all(3)).unwrap();
        assert_eq!(new.head(), Some(&head));
        let mut store = Blobs::default();
        for (name, bytes) in all.puts {
            store.0.insert(name, bytes);
        }
        assert!(store.0.contains_key(HEAD_BLOB));
        // A later mutation's manifest still lists the head.
        let more = new
            .enroll("yak", &[model(3)(&[6])], None, vec![vec![6]])
            .unwrap();
        for (name, bytes) in more.puts {
            store.0.insert(name, bytes);
        }
        let (back, _) = Gallery::open(&store, Some("model-a+head"), OpenMode::Strict).unwrap();
        assert_eq!(back.head(), Some(&head));
        assert!(back.blob_names().contains(&HEAD_BLOB.to_string()));
        let (imported, _) = Gallery::import_bytes(&back.export_bytes().unwrap(), None).unwrap();
        assert_eq!((imported.head(), imported.len()), (Some(&head), 4));

        store.0.get_mut(HEAD_BLOB).unwrap()[20] ^= 1;
        assert!(matches!(
            Gallery::open(&store, None, OpenMode::Strict),
            Err(Error::Corrupt { name, .. }) if name == HEAD_BLOB
        ));
        let (skipped, damage) = Gallery::open(&store, None, OpenMode::SkipDamaged).unwrap();
        assert_eq!((skipped.head(), damage[0].blob.as_str()), (None, HEAD_BLOB));
        assert_eq!(skipped.len(), 4, "the classes are still there to re-embed");
    }
}
