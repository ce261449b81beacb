//! The few fields of the Kubernetes API that `pinode status` reads, with the API's own
//! names and nesting (core/v1 `NodeList` → `Node.status.conditions`, apps/v1 `Deployment`
//! and `StatefulSet`, whose status shares `readyReplicas`
//! → `status.readyReplicas`), so that `kubectl get -o json` output parses as it is.
//! Every other field is ignored.

use serde::{Deserialize, Serialize};

/// core/v1 `NodeList`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NodeList {
    #[serde(default)]
    pub items: Vec<Node>,
}

/// core/v1 `Node`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Node {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub status: Option<NodeStatus>,
}

/// meta/v1 `ObjectMeta` (its name).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ObjectMeta {
    #[serde(default)]
    pub name: String,
}

/// core/v1 `NodeStatus`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NodeStatus {
    #[serde(default)]
    pub conditions: Vec<NodeCondition>,
}

/// core/v1 `NodeCondition`: `type` Ready, `status` "True" / "False" / "Unknown".
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NodeCondition {
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

impl NodeList {
    /// Whether the node named `name` has the condition Ready with status "True"; `None`
    /// when the list has no such node.
    pub fn ready(&self, name: &str) -> Option<bool> {
        let node = self.items.iter().find(|n| n.metadata.name == name)?;
        Some(node.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.kind == "Ready" && c.status == "True")
        }))
    }
}

/// apps/v1 `Deployment`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Deployment {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub status: Option<DeploymentStatus>,
}

/// apps/v1 `DeploymentStatus`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentStatus {
    #[serde(default)]
    pub replicas: Option<i32>,
    #[serde(default)]
    pub ready_replicas: Option<i32>,
}

impl Deployment {
    /// At least one replica ready.
    pub fn running(&self) -> bool {
        self.status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .is_some_and(|r| r > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_follows_the_ready_condition() {
        let list: NodeList = serde_json::from_str(
            r#"{"apiVersion":"v1","kind":"NodeList","items":[
            {"metadata":{"name":"a"},"status":{"conditions":[{"type":"MemoryPressure","status":"False"},{"type":"Ready","status":"True"}]}},
            {"metadata":{"name":"b"},"status":{"conditions":[{"type":"Ready","status":"Unknown"}]}}]}"#,
        )
        .unwrap();
        assert_eq!(list.ready("a"), Some(true));
        assert_eq!(list.ready("b"), Some(false));
        assert_eq!(list.ready("c"), None);
        let d: Deployment =
            serde_json::from_str(r#"{"status":{"replicas":1,"readyReplicas":1}}"#).unwrap();
        assert!(d.running());
        let d: Deployment = serde_json::from_str(r#"{"status":{"replicas":1}}"#).unwrap();
        assert!(!d.running());
    }
}
