//! Typed values a handler attaches to its [`super::Response`] for the layers around it
//! (an [`super::Observer`], a wrapping handler), one per type, the way the `http`
//! crate's `Extensions` work. The framework never looks inside: it only carries them
//! from the handler to the observer, so an application can report what it did (a
//! cache status, say) without encoding it in a header and parsing it back.

use std::any::{Any, TypeId};
use std::fmt;

/// At most one value per type.
#[derive(Default)]
pub struct Extensions {
    values: Vec<(TypeId, Box<dyn Any + Send + Sync>)>,
}

impl Extensions {
    /// No values.
    pub fn new() -> Extensions {
        Extensions::default()
    }

    /// Stores `value`, replacing any earlier value of the same type.
    pub fn insert<T: Any + Send + Sync>(&mut self, value: T) {
        let id = TypeId::of::<T>();
        self.values.retain(|(t, _)| *t != id);
        self.values.push((id, Box::new(value)));
    }

    /// The value of type `T`, if one was stored.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        let id = TypeId::of::<T>();
        self.values
            .iter()
            .find(|(t, _)| *t == id)
            .and_then(|(_, v)| v.downcast_ref())
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

impl fmt::Debug for Extensions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Extensions({} values)", self.values.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_value_per_type() {
        let mut e = Extensions::new();
        assert!(e.get::<u8>().is_none() && e.is_empty());
        e.insert(1u8);
        e.insert("label");
        e.insert(2u8);
        assert_eq!(e.get::<u8>(), Some(&2));
        assert_eq!(e.get::<&str>(), Some(&"label"));
        assert!(e.get::<u16>().is_none());
    }
}
