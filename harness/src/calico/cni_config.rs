//! Calico's CNI network configuration: the raw conflist found in
//! `/etc/cni/net.d/10-calico.conflist`, or the `calico-config` ConfigMap of
//! kube-system whose `data.cni_network_config` holds the templated conflist.
//! Only the `calico` plugin's `feature_control` matters for floating IPs.

use serde::Serialize;
use serde_json::Value;
use thiserror::Error;

/// The `feature_control` section of the `calico` plugin. Both default to false,
/// as in Calico's `types.FeatureControl`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CniFeatureControl {
    /// `floating_ips`: the CNI plugin honours `cni.projectcalico.org/floatingIPs`.
    pub floating_ips: bool,
    /// `ip_addrs_no_ipam`: the plugin honours `cni.projectcalico.org/ipAddrsNoIpam`.
    pub ip_addrs_no_ipam: bool,
}

/// What the harness reads from a Calico CNI network configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CniNetworkConfig {
    /// Network name (`k8s-pod-network` in Calico's manifests).
    pub name: String,
    pub cni_version: String,
    /// Plugin `type`s in chain order (e.g. `calico`, `portmap`).
    pub plugin_types: Vec<String>,
    /// The `calico` plugin's `ipam.type` (`calico-ipam` normally).
    pub ipam_type: Option<String>,
    /// The `calico` plugin's `mtu`, after template substitution.
    pub mtu: Option<u64>,
    pub feature_control: CniFeatureControl,
}

/// Values substituted into the ConfigMap's templated conflist, as Calico's
/// install-cni container does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateValues {
    /// `__KUBERNETES_NODE_NAME__`
    pub node_name: String,
    /// `__CNI_MTU__` (unquoted in the template, so it must be a number)
    pub mtu: u32,
    /// `__KUBECONFIG_FILEPATH__`
    pub kubeconfig: String,
}

impl Default for TemplateValues {
    fn default() -> Self {
        Self {
            node_name: "node".to_owned(),
            mtu: 1440,
            kubeconfig: "/etc/cni/net.d/calico-kubeconfig".to_owned(),
        }
    }
}

/// Why a CNI network configuration was rejected.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum CniConfigError {
    #[error("CNI config is not valid JSON at line {line} column {column}: {reason}")]
    Json {
        line: usize,
        column: usize,
        reason: String,
    },
    #[error("ConfigMap is not valid YAML: {0}")]
    Yaml(String),
    #[error("expected a ConfigMap (kind: ConfigMap), found kind `{0}`")]
    NotConfigMap(String),
    #[error("ConfigMap has no `data.cni_network_config`")]
    MissingNetworkConfig,
    #[error("data.cni_network_config: {0}")]
    InConfigMap(Box<CniConfigError>),
    #[error("CNI config must be a JSON object")]
    NotAnObject,
    #[error("CNI config has no plugin of type `calico`")]
    NoCalicoPlugin,
    #[error("CNI config field `{field}` must be {expected}")]
    BadField {
        field: String,
        expected: &'static str,
    },
}

/// Reads either form: text starting with `{` is a conflist, anything else a
/// ConfigMap (YAML).
pub fn parse_cni_config(
    text: &str,
    values: &TemplateValues,
) -> Result<CniNetworkConfig, CniConfigError> {
    if text.trim_start().starts_with('{') {
        parse_conflist(text)
    } else {
        parse_calico_config_map(text, values)
    }
}

/// Parses the kube-system `calico-config` ConfigMap and the conflist it carries.
pub fn parse_calico_config_map(
    yaml: &str,
    values: &TemplateValues,
) -> Result<CniNetworkConfig, CniConfigError> {
    let doc: yaml_serde::Value =
        yaml_serde::from_str(yaml).map_err(|e| CniConfigError::Yaml(e.to_string()))?;
    let kind = doc.get("kind").and_then(|k| k.as_str()).unwrap_or("");
    if kind != "ConfigMap" {
        return Err(CniConfigError::NotConfigMap(kind.to_owned()));
    }
    let template = doc
        .get("data")
        .and_then(|d| d.get("cni_network_config"))
        .and_then(|c| c.as_str())
        .ok_or(CniConfigError::MissingNetworkConfig)?;
    let json = substitute_template(template, values);
    parse_conflist(&json).map_err(|e| CniConfigError::InConfigMap(Box::new(e)))
}

/// Replaces the placeholders Calico's install-cni substitutes.
pub fn substitute_template(template: &str, values: &TemplateValues) -> String {
    template
        .replace("__KUBERNETES_NODE_NAME__", &values.node_name)
        .replace("__CNI_MTU__", &values.mtu.to_string())
        .replace("__KUBECONFIG_FILEPATH__", &values.kubeconfig)
}

/// Parses a conflist (`plugins` list) or a single-plugin network config.
pub fn parse_conflist(json: &str) -> Result<CniNetworkConfig, CniConfigError> {
    let doc: Value = serde_json::from_str(json).map_err(|e| CniConfigError::Json {
        line: e.line(),
        column: e.column(),
        reason: strip_position(&e.to_string()),
    })?;
    let top = doc.as_object().ok_or(CniConfigError::NotAnObject)?;
    let name = string_field(top, "name")?.unwrap_or_default();
    let cni_version = string_field(top, "cniVersion")?.unwrap_or_default();
    // A plain network config (no `plugins`) is a chain of one: itself.
    let plugins: Vec<&serde_json::Map<String, Value>> = match top.get("plugins") {
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, p)| {
                p.as_object().ok_or_else(|| CniConfigError::BadField {
                    field: format!("plugins[{i}]"),
                    expected: "an object",
                })
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(CniConfigError::BadField {
                field: "plugins".into(),
                expected: "a list",
            })
        }
        None => vec![top],
    };
    let plugin_types = plugins
        .iter()
        .map(|p| {
            p.get("type")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        })
        .collect::<Vec<_>>();
    let calico = plugins
        .iter()
        .find(|p| p.get("type").and_then(Value::as_str) == Some("calico"))
        .ok_or(CniConfigError::NoCalicoPlugin)?;
    let feature_control = match calico.get("feature_control") {
        None | Some(Value::Null) => CniFeatureControl::default(),
        Some(Value::Object(fc)) => CniFeatureControl {
            floating_ips: bool_field(fc, "feature_control.floating_ips")?,
            ip_addrs_no_ipam: bool_field(fc, "feature_control.ip_addrs_no_ipam")?,
        },
        Some(_) => {
            return Err(CniConfigError::BadField {
                field: "feature_control".into(),
                expected: "an object",
            })
        }
    };
    let ipam_type = calico
        .get("ipam")
        .and_then(|i| i.get("type"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mtu = match calico.get("mtu") {
        None => None,
        Some(v) => Some(v.as_u64().ok_or_else(|| CniConfigError::BadField {
            field: "mtu".into(),
            expected: "a number",
        })?),
    };
    Ok(CniNetworkConfig {
        name,
        cni_version,
        plugin_types,
        ipam_type,
        mtu,
        feature_control,
    })
}

fn string_field(
    obj: &serde_json::Map<String, Value>,
    key: &str,
) -> Result<Option<String>, CniConfigError> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(CniConfigError::BadField {
            field: key.into(),
            expected: "a string",
        }),
    }
}

fn bool_field(fc: &serde_json::Map<String, Value>, path: &str) -> Result<bool, CniConfigError> {
    let key = path.rsplit('.').next().unwrap_or(path);
    match fc.get(key) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        // Go's encoding/json refuses a non-bool for a bool field, and so does the plugin.
        Some(_) => Err(CniConfigError::BadField {
            field: path.into(),
            expected: "true or false",
        }),
    }
}

/// serde_json appends " at line L column C"; the position is reported separately.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG_MAP_ON: &str =
        include_str!("../../../fixtures/cni/calico-config-floating-ips-on.yaml");
    const CONFIG_MAP_OFF: &str =
        include_str!("../../../fixtures/cni/calico-config-floating-ips-off.yaml");
    const CONFLIST: &str = include_str!("../../../fixtures/cni/10-calico.conflist");

    #[test]
    fn config_map_with_feature_on() {
        let config = parse_cni_config(CONFIG_MAP_ON, &TemplateValues::default()).unwrap();
        assert!(config.feature_control.floating_ips);
        assert_eq!(config.plugin_types, ["calico", "portmap"]);
        insta::assert_yaml_snapshot!(config);
    }

    #[test]
    fn config_map_with_feature_off() {
        let config = parse_cni_config(CONFIG_MAP_OFF, &TemplateValues::default()).unwrap();
        assert!(!config.feature_control.floating_ips);
    }

    #[test]
    fn raw_conflist() {
        let config = parse_cni_config(CONFLIST, &TemplateValues::default()).unwrap();
        insta::assert_yaml_snapshot!(config);
    }

    #[test]
    fn template_values_are_substituted() {
        let values = TemplateValues {
            node_name: "node-a".into(),
            mtu: 1410,
            kubeconfig: "/k".into(),
        };
        let text = substitute_template(
            r#"{"n":"__KUBERNETES_NODE_NAME__","m":__CNI_MTU__,"k":"__KUBECONFIG_FILEPATH__"}"#,
            &values,
        );
        assert_eq!(text, r#"{"n":"node-a","m":1410,"k":"/k"}"#);
        let config = parse_cni_config(CONFIG_MAP_ON, &values).unwrap();
        assert_eq!(config.mtu, Some(1410));
    }

    #[test]
    fn feature_control_defaults_to_off() {
        let config =
            parse_conflist(r#"{"name":"n","cniVersion":"0.3.1","type":"calico"}"#).unwrap();
        assert_eq!(config.feature_control, CniFeatureControl::default());
        let config = parse_conflist(
            r#"{"plugins":[{"type":"calico","feature_control":{"ip_addrs_no_ipam":true}}]}"#,
        )
        .unwrap();
        assert!(!config.feature_control.floating_ips);
        assert!(config.feature_control.ip_addrs_no_ipam);
    }

    #[test]
    fn error_messages() {
        let errors = [
            parse_conflist("{\"plugins\": [\n  {\"type\": \"calico\",}\n]}").unwrap_err(),
            parse_conflist(r#"{"plugins":[{"type":"portmap"}]}"#).unwrap_err(),
            parse_conflist(
                r#"{"plugins":[{"type":"calico","feature_control":{"floating_ips":"yes"}}]}"#,
            )
            .unwrap_err(),
            parse_conflist("[]").unwrap_err(),
            parse_calico_config_map("kind: Secret\n", &TemplateValues::default()).unwrap_err(),
            parse_calico_config_map("kind: ConfigMap\ndata: {}\n", &TemplateValues::default())
                .unwrap_err(),
            parse_calico_config_map(
                "kind: ConfigMap\ndata:\n  cni_network_config: '{\"plugins\": [}'\n",
                &TemplateValues::default(),
            )
            .unwrap_err(),
            parse_calico_config_map("kind: [\n", &TemplateValues::default()).unwrap_err(),
        ];
        let rendered: Vec<String> = errors.iter().map(ToString::to_string).collect();
        insta::assert_yaml_snapshot!(rendered);
    }
}
