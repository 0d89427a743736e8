//! The lock-free single-producer single-consumer channel that carries exception packets
//! from a worker lcore to the control thread.
//!
//! Built on `rtrb` (a wait-free SPSC ring buffer) rather than `rte_ring`: it is typed, so
//! it carries owned [`crate::Mbuf`]s (or `(port, Mbuf)` pairs) and frees whatever is left
//! in it when both ends are gone; it needs no EAL memory or global name; and its push and
//! pop are a plain load and a release store, no atomic read-modify-write. See
//! `docs/dpdk.md`.

/// Creates a channel holding up to `capacity` items.
pub fn exception_channel<T: Send>(capacity: usize) -> (ExceptionSender<T>, ExceptionReceiver<T>) {
    let (producer, consumer) = rtrb::RingBuffer::new(capacity);
    (ExceptionSender { producer }, ExceptionReceiver { consumer })
}

/// The sending end, owned by one worker lcore.
#[derive(Debug)]
pub struct ExceptionSender<T> {
    producer: rtrb::Producer<T>,
}

impl<T> ExceptionSender<T> {
    /// Queues `item`; gives it back when the channel is full (the caller drops and counts).
    #[inline]
    pub fn send(&mut self, item: T) -> Result<(), T> {
        self.producer
            .push(item)
            .map_err(|rtrb::PushError::Full(item)| item)
    }

    /// Free slots.
    pub fn free_slots(&self) -> usize {
        self.producer.slots()
    }

    /// True when the receiver is gone.
    pub fn is_abandoned(&self) -> bool {
        self.producer.is_abandoned()
    }
}

/// The receiving end, owned by the control thread.
#[derive(Debug)]
pub struct ExceptionReceiver<T> {
    consumer: rtrb::Consumer<T>,
}

impl<T> ExceptionReceiver<T> {
    /// The oldest queued item, if any.
    #[inline]
    pub fn recv(&mut self) -> Option<T> {
        self.consumer.pop().ok()
    }

    /// Queued items.
    pub fn len(&self) -> usize {
        self.consumer.slots()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.consumer.is_empty()
    }

    /// True when the sender is gone.
    pub fn is_abandoned(&self) -> bool {
        self.consumer.is_abandoned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_full_and_abandoned() {
        let (mut tx, mut rx) = exception_channel::<u32>(2);
        assert!(rx.is_empty());
        tx.send(1).unwrap();
        tx.send(2).unwrap();
        assert_eq!(tx.send(3), Err(3), "full channel gives the item back");
        assert_eq!(rx.len(), 2);
        assert_eq!(rx.recv(), Some(1));
        assert_eq!(rx.recv(), Some(2));
        assert_eq!(rx.recv(), None);
        drop(tx);
        assert!(rx.is_abandoned());
    }

    #[test]
    fn items_left_in_the_channel_are_dropped() {
        let item = std::sync::Arc::new(());
        let (mut tx, rx) = exception_channel(4);
        tx.send(item.clone()).unwrap();
        assert_eq!(std::sync::Arc::strong_count(&item), 2);
        drop((tx, rx));
        assert_eq!(std::sync::Arc::strong_count(&item), 1);
    }

    #[test]
    fn crosses_threads_in_order() {
        let (mut tx, mut rx) = exception_channel::<u64>(64);
        let producer = std::thread::spawn(move || {
            for i in 0..100_000u64 {
                let mut item = i;
                while let Err(back) = tx.send(item) {
                    item = back;
                    std::hint::spin_loop();
                }
            }
        });
        let mut expected = 0u64;
        while expected < 100_000 {
            if let Some(v) = rx.recv() {
                assert_eq!(v, expected);
                expected += 1;
            }
        }
        producer.join().unwrap();
    }
}
