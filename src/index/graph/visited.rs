/// Points visited by the current search: a stamp per point, so starting a
/// search costs nothing (no clearing) except once every 2³² searches.
#[derive(Default)]
pub(super) struct Visited {
    marks: Vec<u32>,
    stamp: u32,
}

impl Visited {
    pub(super) fn begin(&mut self, n: usize) {
        if self.marks.len() < n {
            self.marks.resize(n, 0);
        }
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.marks.fill(0);
            self.stamp = 1;
        }
    }

    /// True when `p` had not been visited.
    #[inline]
    pub(super) fn insert(&mut self, p: u32) -> bool {
        let mark = &mut self.marks[p as usize];
        let new = *mark != self.stamp;
        *mark = self.stamp;
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visited_stamps_survive_wrapping() {
        let mut v = Visited::default();
        v.begin(4);
        assert!(v.insert(2));
        assert!(!v.insert(2));
        v.stamp = u32::MAX;
        v.marks[1] = 1;
        v.begin(4);
        assert_eq!(v.stamp, 1);
        assert!(v.insert(1), "marks are cleared when the stamp wraps");
        assert!(!v.insert(1));
    }
}
