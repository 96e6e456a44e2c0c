//! A worker's pool of I/O buffers.
//!
//! A connection holds a buffer only while it has bytes in flight: unconsumed input (a head or
//! frame that arrived in pieces) or output the socket has not yet taken. Buffers come from this
//! pool and go back to it, so an idle connection holds none and a busy one allocates none in
//! steady state. The pool keeps at most `max_free` buffers; buffers that grew past the pooled
//! size (a 16 MiB message) are freed instead of kept.

/// The pool.
#[derive(Debug)]
pub(crate) struct Pool {
    free: Vec<Vec<u8>>,
    size: usize,
    max_free: usize,
}

impl Pool {
    /// A pool of buffers of `size` bytes, keeping at most `max_free` spare ones.
    pub(crate) fn new(size: usize, max_free: usize) -> Self {
        Pool {
            free: Vec::new(),
            size,
            max_free,
        }
    }

    /// The size of a pooled buffer.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// An empty buffer with at least the pooled capacity.
    pub(crate) fn take(&mut self) -> Vec<u8> {
        self.free
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.size))
    }

    /// Give a buffer back. It is kept if it is of the pooled size and the pool is not full.
    pub(crate) fn give(&mut self, mut buf: Vec<u8>) {
        let cap = buf.capacity();
        if cap >= self.size && cap <= 2 * self.size && self.free.len() < self.max_free {
            buf.clear();
            self.free.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_buffers_and_frees_oversized_ones() {
        let mut pool = Pool::new(1024, 2);
        let mut a = pool.take();
        a.extend_from_slice(b"abc");
        let ptr = a.as_ptr();
        pool.give(a);
        let b = pool.take();
        assert!(b.is_empty());
        assert_eq!(b.as_ptr(), ptr);
        pool.give(b);
        pool.give(Vec::with_capacity(1 << 20));
        assert_eq!(pool.free.len(), 1);
        pool.give(Vec::with_capacity(1024));
        pool.give(Vec::with_capacity(1024));
        assert_eq!(pool.free.len(), 2);
    }
}
