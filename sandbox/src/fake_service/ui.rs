//! The page fake-service serves at `/ui/` (`/ui` redirects there, see [`super::mux`]): the
//! workshop only needs it to be there (200, HTML);
//! this one renders the service's JSON answer as a small tree, like the original's React UI.

pub(crate) const INDEX_HTML: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Fake Service</title>
<style>
body { font-family: sans-serif; margin: 2em; }
.svc { border: 1px solid #999; border-radius: 6px; padding: .5em 1em; margin: .5em 0 .5em 1.5em; }
.ok { border-color: #3a3; } .bad { border-color: #c33; }
</style>
</head>
<body>
<h1>Fake Service</h1>
<div id="tree">Loading&hellip;</div>
<script>
function render(r) {
  const d = document.createElement("div");
  d.className = "svc " + (r.code === 200 ? "ok" : "bad");
  d.innerText = (r.name || r.uri) + " (" + (r.ip_addresses || []).join(", ") + ") — " + r.code;
  for (const k of Object.keys(r.upstream_calls || {})) d.appendChild(render(r.upstream_calls[k]));
  return d;
}
fetch("/").then(x => x.json()).then(r => {
  const t = document.getElementById("tree"); t.innerHTML = ""; t.appendChild(render(r));
}).catch(e => { document.getElementById("tree").innerText = String(e); });
</script>
</body>
</html>
"#;
