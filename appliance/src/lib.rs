//! anycast6: the appliance library.
