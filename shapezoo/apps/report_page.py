"""The report's page: one self-contained HTML file around the sections ``report`` builds - three.js r170 and its
OrbitControls (MIT, shapezoo/assets) inlined through an import map of data URLs, meshes inlined as base64 arrays,
the viewers and the interpolation slider in a small module script.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def mesh_json(vertices: np.ndarray, faces: np.ndarray, name: str) -> dict:
    """A mesh as the page's viewers read it: base64 float32 vertices and uint32 faces."""
    enc = lambda a: base64.b64encode(np.ascontiguousarray(a).tobytes()).decode()  # noqa: E731
    return {"name": name, "v": enc(vertices.astype(np.float32)), "f": enc(faces.astype(np.uint32))}


def read_obj(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(vertices, faces) of a mesh file as written, not moved into the frame (empty arrays for an empty file)."""
    import trimesh

    try:
        m: Any = trimesh.load(path, process=False, force="mesh")
    except (ValueError, IndexError):  # an empty mesh file (a step with no surface)
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)
    return np.asarray(m.vertices), np.asarray(m.faces)


def _asset_url(name: str) -> str:
    text = (Path(__file__).parents[1] / "assets" / name).read_bytes()
    return "data:text/javascript;base64," + base64.b64encode(text).decode()


def page(sections: Sequence[tuple[str, str, str]], data: dict) -> str:
    """The whole page from (id, title, HTML) sections in order and the meshes the viewers show (``data``: ``gallery``
    and ``interp`` lists of ``mesh_json``)."""
    body = "".join(f'<section id="{k}"><h2>{title}</h2>{part}</section>' for k, title, part in sections)
    imports = json.dumps(
        {
            "imports": {
                "three": _asset_url("three.module.min.js"),
                "three/addons/OrbitControls.js": _asset_url("OrbitControls.js"),
            }
        }
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>shapezoo report</title>
<style>body{{font-family:sans-serif;margin:24px;color:#222}} .viewer{{width:560px;height:420px;border:1px solid #ccc}}
table{{border-collapse:collapse;margin:8px 0}} td,th{{border:1px solid #ddd;padding:3px 8px;font-size:13px}}
img{{max-width:100%}} .plot{{margin:6px;border:1px solid #eee}} section{{margin-bottom:28px}}
body.solo section{{display:none}} body.solo section.solo{{display:block;margin:0}}
body.solo section.solo>*:not(.viewer){{display:none}} body.solo{{margin:0}}
body.solo .viewer{{width:100vw;height:100vh;border:0}} body.solo h1{{display:none}}
body.solo{{overflow:hidden}}</style>
<script type="importmap">{imports}</script></head><body>
<h1>shapezoo report</h1>{body}
<script id="data" type="application/json">{json.dumps(data)}</script>
<script type="module">
import * as THREE from 'three';
import {{ OrbitControls }} from 'three/addons/OrbitControls.js';
const data = JSON.parse(document.getElementById('data').textContent);
const params = new URLSearchParams(location.hash.slice(1));
function geometry(m) {{
  const dec = s => Uint8Array.from(atob(s), c => c.charCodeAt(0)).buffer;
  const g = new THREE.BufferGeometry();
  g.setAttribute('position', new THREE.BufferAttribute(new Float32Array(dec(m.v)), 3));
  g.setIndex(new THREE.BufferAttribute(new Uint32Array(dec(m.f)), 1));
  g.computeVertexNormals();
  return g;
}}
function viewer(el, meshes) {{
  const renderer = new THREE.WebGLRenderer({{antialias: true, preserveDrawingBuffer: true}});
  renderer.setSize(el.clientWidth, el.clientHeight);
  renderer.setClearColor(0xffffff);
  el.appendChild(renderer.domElement);
  const scene = new THREE.Scene();
  const camera = new THREE.PerspectiveCamera(35, el.clientWidth / el.clientHeight, 0.01, 10);
  camera.up.set(0, 0, 1); camera.position.set(1.1, -1.3, 0.9);
  scene.add(new THREE.HemisphereLight(0xffffff, 0x445566, 1.2));
  const sun = new THREE.DirectionalLight(0xffffff, 1.8); sun.position.set(1, -1.5, 2); scene.add(sun);
  const material = new THREE.MeshStandardMaterial({{color: 0x5d8cc9, roughness: 0.6, side: THREE.DoubleSide}});
  const objects = meshes.map(m => new THREE.Mesh(geometry(m), material));
  objects.forEach((o, i) => {{ o.visible = i === 0; scene.add(o); }});
  const controls = new OrbitControls(camera, renderer.domElement);
  const draw = () => renderer.render(scene, camera);
  controls.addEventListener('change', draw);
  draw();
  return {{ show(i) {{ objects.forEach((o, j) => o.visible = j === i); draw(); }} }};
}}
const solo = params.get('view');
if (solo) {{ document.body.classList.add('solo');
  document.getElementById(solo === 'interp' ? 'interpolation' : 'gallery').classList.add('solo'); }}
if (data.gallery.length) {{
  const v = viewer(document.getElementById('gallery-viewer'), data.gallery);
  const sel = document.getElementById('gallery-select');
  sel.addEventListener('change', () => v.show(+sel.value));
  if (params.has('mesh')) {{ sel.value = params.get('mesh'); sel.dispatchEvent(new Event('change')); }}
}}
if (data.interp.length) {{
  const v = viewer(document.getElementById('interp-viewer'), data.interp);
  const slider = document.getElementById('interp-slider');
  slider.addEventListener('input', () => {{
    v.show(+slider.value); document.getElementById('interp-step').textContent = slider.value; }});
  if (params.has('step')) {{ slider.value = params.get('step'); slider.dispatchEvent(new Event('input')); }}
}}
document.body.dataset.ready = '1';
</script></body></html>"""
