//! The ingress controller's control loop (ingress-nginx's, as far as the simulator plays it):
//! its routing table ([`routes`]), refiled on every Ingress change the store reports, and the
//! address it serves on written into the status of every Ingress created or changed while it
//! runs. Its listener, which serves the routes, is `crate::ingress_listener`.

pub(crate) mod routes;

use serde_json::json;

use super::Controllers;
use crate::json::obj_mut;
use crate::resources::INGRESSES;
use crate::store::Store;

impl Controllers {
    /// The controller's status sync: an Ingress served here shows the listener's address in
    /// `status.loadBalancer` (written only when it differs, so a sync is idempotent).
    pub(super) fn sync_ingress_status(&mut self, store: &mut Store, ns: &str, name: &str) {
        let Some(address) = self.ingress_address.clone() else {
            return;
        };
        let Some(ingress) = store.get(&INGRESSES, ns, name) else {
            return;
        };
        let wanted = json!({ "ingress": [{ "ip": address }] });
        if ingress.pointer("/status/loadBalancer") == Some(&wanted) {
            return;
        }
        let mut updated = (*ingress).clone();
        obj_mut(&mut updated, "status").insert("loadBalancer".into(), wanted);
        store.put(&INGRESSES, updated, self);
    }
}
