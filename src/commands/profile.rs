//! `pinode profile check` and `pinode profile schema`.

use std::path::Path;

use pinode::Error;

use super::{Output, load_profile};

pub fn check(path: &Path, out: &Output) -> Result<(), Error> {
    let loaded = load_profile(path, out)?;
    let p = &loaded.profile;
    out.say(format!(
        "{}: valid, {} node(s)",
        path.display(),
        loaded.nodes.len()
    ));
    out.say(format!(
        "  os: {} (first boot: {})",
        p.os.image,
        init_name(p.os.init)
    ));
    if let Some(cluster) = &p.cluster {
        out.say(format!("  cluster: {}", cluster.name));
    }
    for node in &loaded.nodes {
        let mut facts = vec![
            node.role.as_str().to_string(),
            format!("user {}", node.user.name),
        ];
        let keys = node.user.keys.len();
        if keys > 0 {
            facts.push(format!("{keys} key(s)"));
        }
        if node.user.keys_file.is_some() {
            facts.push("keys from file".into());
        }
        if let Some(wifi) = &node.wifi {
            facts.push(format!(
                "wi-fi {:?} ({})",
                wifi.value.ssid, wifi.value.country
            ));
        }
        facts.push(node.timezone.clone());
        out.say(format!("  {:<16} {}", node.hostname, facts.join(", ")));
    }
    Ok(())
}

fn init_name(init: pinode::profile::InitChoice) -> &'static str {
    match init {
        pinode::profile::InitChoice::Auto => "auto",
        pinode::profile::InitChoice::Firstrun => "firstrun",
        pinode::profile::InitChoice::CloudInit => "cloud-init",
    }
}

pub fn schema(out: &Output) -> Result<(), Error> {
    out.json(&pinode::profile::json_schema());
    Ok(())
}
