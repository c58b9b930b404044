// The situation-room wall. Reads the public API and one live stream (/v1/live/wall); asks
// for a token only when an action is refused without one (kept in sessionStorage).
"use strict";
(function () {
  const I18N = {
    id: {
      title: "Ruang Situasi Kota Semarang", alarms: "Alarm aktif", live: "LANGSUNG",
      reconnecting: "MENYAMBUNG ULANG…", stale: "TIDAK ADA DATA", buses: "bus",
      tile_prices: "Harga pangan", tile_reports: "Laporan warga lewat SLA",
      tile_procurement: "Pengadaan: tanda bahaya", tile_sources: "Sumber data senyap",
      auth_title: "Petugas", operator_name: "Nama petugas", token: "Token (jika diminta)",
      cancel: "Batal", ok: "Lanjut", ack: "Akui", clear: "Selesaikan", acked_by: "Diakui",
      need_name: "Tulis nama Anda (atau token).", need_token: "Tindakan ini memerlukan token.",
      bad_token: "Token ditolak. Periksa lalu coba lagi.", sent_ack: "Pengakuan terkirim",
      sent_clear: "Penyelesaian terkirim", forbidden: "Tidak diizinkan", conflict: "Sudah berubah",
      unavailable: "Layanan sibuk, coba lagi", more: "lainnya", none: "Tidak ada",
      above_het: "di atas HET/HAP", spikes: "lonjakan harga", silent_markets: "pasar senyap",
      overdue: "lewat SLA", flagged: "tender bertanda", all_running: "Semua sumber mengirim data",
      silent: "senyap", stopped: "berhenti", minutes: "mnt", hours: "jam", seconds: "dtk",
      lang_switch: "English", legend_bus: "Bus: ● sesuai batas ◆ mendekati ▲ melebihi",
      legend_gauge: "Pos duga air (kotak): ● normal ◆ waspada ▲ siaga ■ awas",
      legend_road: "Jalan (garis putus): ● lancar ◆ padat ▲ sangat padat ■ macet",
      legend_other: "T truk sampah · ■! kamera dengan insiden",
    },
    en: {
      title: "Semarang City Situation Room", alarms: "Active alarms", live: "LIVE",
      reconnecting: "RECONNECTING…", stale: "NO DATA", buses: "buses",
      tile_prices: "Food prices", tile_reports: "Citizens' reports past SLA",
      tile_procurement: "Procurement red flags", tile_sources: "Silent data sources",
      auth_title: "Operator", operator_name: "Operator name", token: "Token (if asked)",
      cancel: "Cancel", ok: "Continue", ack: "Acknowledge", clear: "Clear", acked_by: "Acknowledged",
      need_name: "Enter your name (or a token).", need_token: "This action needs a token.",
      bad_token: "Token refused. Check it and try again.", sent_ack: "Acknowledgement sent",
      sent_clear: "Clear sent", forbidden: "Not allowed", conflict: "Already changed",
      unavailable: "Service busy, try again", more: "more", none: "None",
      above_het: "above HET/HAP", spikes: "price spikes", silent_markets: "silent markets",
      overdue: "past SLA", flagged: "flagged tenders", all_running: "Every source is sending",
      silent: "silent", stopped: "stopped", minutes: "min", hours: "h", seconds: "s",
      lang_switch: "Bahasa Indonesia", legend_bus: "Bus: ● within limit ◆ near ▲ over",
      legend_gauge: "Gauge (box): ● normal ◆ waspada ▲ siaga ■ awas",
      legend_road: "Road (dashed): ● free ◆ moderate ▲ heavy ■ jammed",
      legend_other: "T garbage truck · ■! camera with an incident",
    },
  };
  const SEVERITY = {
    critical: { rank: 4, shape: "■", id: "KRITIS", en: "CRITICAL" },
    major: { rank: 3, shape: "▲", id: "MAYOR", en: "MAJOR" },
    warning: { rank: 2, shape: "◆", id: "PERINGATAN", en: "WARNING" },
    info: { rank: 1, shape: "●", id: "INFO", en: "INFO" },
  };
  const DOMAINS = {
    transit: ["BRT", "BRT"], flood: ["Banjir", "Flood"], traffic: ["Lalu lintas", "Traffic"],
    cctv: ["CCTV", "CCTV"], waste: ["Sampah", "Waste"], prices: ["Harga pangan", "Food prices"],
    reports: ["Laporan warga", "Citizens' reports"], procurement: ["Pengadaan", "Procurement"],
    sources: ["Sumber data", "Data sources"],
  };
  const KINDS = {
    overspeed: ["Melebihi batas kecepatan", "Overspeed"], flood_level: ["Tinggi muka air", "Water level"],
    flood_rise: ["Air naik cepat", "Fast rise"], station_silent: ["Pos duga senyap", "Gauge silent"],
    congestion: ["Kemacetan", "Congestion"], cctv_fire_smoke: ["Api/asap", "Fire/smoke"],
    cctv_accident: ["Kecelakaan", "Accident"], cctv_crowd: ["Kerumunan", "Crowd"],
    cctv_vandalism: ["Vandalisme", "Vandalism"], truck_idle: ["Truk diam", "Truck idle"],
    source_silent: ["Sumber senyap", "Source silent"], price_above_het: ["Di atas HET/HAP", "Above HET/HAP"],
    price_spike: ["Lonjakan harga", "Price spike"], market_silent: ["Pasar senyap", "Market silent"],
    report_sla_breach: ["Lewat SLA", "Past SLA"], tender_single_bidder: ["Penawar tunggal", "Single bidder"],
    award_near_hps: ["Nilai dekat HPS", "Award near HPS"], tender_period_short: ["Masa tender singkat", "Short tender period"],
    repeated_winner: ["Pemenang berulang", "Repeated winner"],
  };
  // Bands and congestion: colour class, shape, and the word shown next to it.
  const BANDS = {
    normal: ["c-ok", "●", "NORMAL", "NORMAL"], waspada: ["c-warn", "◆", "WASPADA", "WASPADA"],
    siaga: ["c-major", "▲", "SIAGA", "SIAGA"], awas: ["c-crit", "■", "AWAS", "AWAS"],
  };
  const FLOOD_FILL = { normal: "#2ea043", waspada: "#e3b341", siaga: "#f0883e", awas: "#f85149" };
  const CONGESTION = {
    free: ["c-ok", "●", "", ""], moderate: ["c-warn", "◆", "PADAT", "BUSY"],
    heavy: ["c-major", "▲", "SANGAT PADAT", "HEAVY"], jammed: ["c-crit", "■", "MACET", "JAMMED"],
  };
  const SHOWN_ALARMS = 12;

  let lang = localStorage.getItem("sitroom.lang") === "en" ? "en" : "id";
  const t = (key) => I18N[lang][key] || I18N.id[key] || key;
  const pick = (pair, fallback) => (pair ? pair[lang === "en" ? 1 : 0] : fallback);
  const $ = (sel) => document.querySelector(sel);
  const esc = (s) => String(s == null ? "" : s).replace(/[&<>"']/g, (c) => ({
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));

  const state = {
    config: { default_limit_kmh: 60, limits_kmh: {}, max_plausible_speed_kmh: 150 },
    alarms: new Map(), buses: new Map(), liveBuses: new Set(), gauges: new Map(),
    trucks: new Map(), segments: new Map(), cameras: new Map(), incidents: [],
    flood: new Map(), lastEventId: null, lastEventAt: 0, source: null, retryMs: 2000,
  };
  document.body.dataset.liveBuses = "0";

  // ---- API ------------------------------------------------------------------------------
  async function getJson(path) {
    const r = await fetch(path, { headers: { accept: "application/json" } });
    if (!r.ok) throw new Error(`${path}: ${r.status}`);
    return r.json();
  }
  function quietly(fn) {
    return () => fn().catch((e) => console.warn(e));
  }

  // ---- map ------------------------------------------------------------------------------
  const map = L.map("map", { zoomControl: false, attributionControl: true, preferCanvas: false });
  map.setView([-7.0, 110.41], 12);
  const layers = {
    kecamatan: L.geoJSON(null, { style: kecStyle, onEachFeature: (f, l) => { l.feature = f; } }),
    segments: L.layerGroup(), gauges: L.layerGroup(), cameras: L.layerGroup(),
    trucks: L.layerGroup(), buses: L.layerGroup(),
  };
  Object.values(layers).forEach((l) => l.addTo(map));

  function kecStyle(feature) {
    const status = state.flood.get(feature.properties.kecamatan) || "normal";
    const alarmed = status !== "normal";
    return {
      color: alarmed ? FLOOD_FILL[status] : "#6e7681", weight: alarmed ? 4 : 1.5,
      dashArray: status === "awas" ? "" : alarmed ? "8 6" : "",
      fillColor: FLOOD_FILL[status], fillOpacity: alarmed ? 0.35 : 0.06,
    };
  }
  function restyleKecamatan() {
    layers.kecamatan.eachLayer((l) => {
      l.setStyle(kecStyle(l.feature));
      const name = l.feature.properties.kecamatan;
      const status = state.flood.get(name) || "normal";
      const band = BANDS[status] || BANDS.normal;
      const label = status === "normal" ? esc(name) : `${esc(name)}: ${band[1]} ${band[lang === "en" ? 3 : 2]}`;
      if (l.getTooltip()) l.unbindTooltip();
      l.bindTooltip(label, { permanent: status !== "normal", direction: "center", className: "kec-label" });
    });
  }
  function icon(cls, glyph, word, kind) {
    const html = `<b class="${cls}">${glyph}</b>${word ? `<i>${esc(word)}</i>` : ""}`;
    return L.divIcon({ className: `mk mk-${kind}`, html, iconSize: [22, 22], iconAnchor: [11, 11] });
  }
  function place(group, store, id, lat, lon, ic, title) {
    let m = store.get(id);
    if (!m) {
      m = L.marker([lat, lon], { icon: ic, title, keyboard: false });
      store.set(id, m);
      group.addLayer(m);
    } else {
      m.setLatLng([lat, lon]);
      m.setIcon(ic);
    }
    return m;
  }

  // Buses: coloured and shaped against their own corridor's limit, as the overspeed rule.
  function busLook(bus) {
    const limit = state.config.limits_kmh[bus.corridor] || state.config.default_limit_kmh;
    const v = bus.speed_kmh;
    if (v == null) return ["c-muted", "●", ""];
    if (v > limit) return ["c-crit", "▲", `${Math.round(v)}`];
    if (v > 0.9 * limit) return ["c-warn", "◆", `${Math.round(v)}`];
    return ["c-ok", "●", ""];
  }
  const busMarkers = new Map();
  function drawBus(bus) {
    const [cls, glyph, word] = busLook(bus);
    place(layers.buses, busMarkers, bus.vehicle_id, bus.lat, bus.lon, icon(cls, glyph, word, "bus"),
      `${bus.vehicle_id} ${bus.speed_kmh == null ? "" : Math.round(bus.speed_kmh) + " km/h"}`);
  }
  function haversineKm(a, b) {
    const rad = Math.PI / 180, dLat = (b.lat - a.lat) * rad, dLon = (b.lon - a.lon) * rad;
    const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dLon / 2) ** 2;
    return 12742 * Math.asin(Math.sqrt(h));
  }
  function onPosition(p) {
    const prev = state.buses.get(p.vehicle_id);
    const ts = Date.parse(p.timestamp);
    let speed = p.speed_kmh;
    // Most feeds report no speed: derive it from consecutive fixes, as the worker does.
    if (speed == null && prev && prev.ts && ts > prev.ts && ts - prev.ts <= 120000) {
      speed = haversineKm(prev, p) / ((ts - prev.ts) / 3600000);
      // A jump (a new trip, a bad fix) is not a speed: the worker does not count it either.
      if (speed > state.config.max_plausible_speed_kmh) speed = null;
    }
    if (speed == null && prev) speed = prev.speed_kmh;
    const bus = { vehicle_id: p.vehicle_id, corridor: p.corridor, lat: p.lat, lon: p.lon, ts, speed_kmh: speed };
    state.buses.set(p.vehicle_id, bus);
    state.liveBuses.add(p.vehicle_id);
    document.body.dataset.liveBuses = String(state.liveBuses.size);
    drawBus(bus);
    $("#bus-count").textContent = `▶ ${state.liveBuses.size} ${t("buses")}`;
  }
  async function loadBuses() {
    const rows = await getJson("/v1/transit/vehicles?limit=1000");
    for (const r of rows) {
      const known = state.buses.get(r.vehicle_id);
      const ts = Date.parse(r.ts);
      if (known && known.ts > ts) continue;  // the live stream is ahead of the table
      const bus = { vehicle_id: r.vehicle_id, corridor: r.corridor, lat: r.lat, lon: r.lon, ts, speed_kmh: r.speed_kmh };
      state.buses.set(r.vehicle_id, bus);
      drawBus(bus);
    }
  }

  // Gauges: the band of the latest reading against the station's own bands.
  const gaugeMarkers = new Map();
  function bandOf(st) {
    if (st.level && st.level !== "normal") return st.level;
    const b = st.bands_cm || {}, v = st.latest_value;
    if (st.kind !== "level" || v == null) return "normal";
    if (b.awas != null && v >= b.awas) return "awas";
    if (b.siaga != null && v >= b.siaga) return "siaga";
    if (b.waspada != null && v >= b.waspada) return "waspada";
    return "normal";
  }
  function drawGauge(st) {
    const band = BANDS[bandOf(st)] || BANDS.normal;
    const word = band[2] === "NORMAL" ? "" : band[lang === "en" ? 3 : 2];
    place(layers.gauges, gaugeMarkers, st.id, st.lat, st.lon, icon(band[0], band[1], word, "gauge"),
      `${st.name}: ${st.latest_value == null ? "-" : Math.round(st.latest_value)} ${st.kind === "level" ? "cm" : "mm"}`);
  }
  async function loadGauges() {
    for (const st of await getJson("/v1/flood/stations")) {
      state.gauges.set(st.id, st);
      drawGauge(st);
    }
  }
  function onReading(r) {
    const st = state.gauges.get(r.station_id);
    if (!st || r.kind !== st.kind) return;
    st.latest_value = r.value;
    st.latest_at = r.timestamp;
    drawGauge(st);
  }
  async function loadFlood() {
    for (const k of await getJson("/v1/flood/status")) state.flood.set(k.kecamatan, k.status);
    restyleKecamatan();
  }

  const segmentMarkers = new Map();
  async function loadSegments() {
    for (const s of await getJson("/v1/traffic/segments")) {
      const c = CONGESTION[(s.latest && s.latest.congestion) || "free"] || CONGESTION.free;
      place(layers.segments, segmentMarkers, s.id, s.lat, s.lon, icon(c[0], c[1], c[lang === "en" ? 3 : 2], "road"),
        `${s.road} ${s.name}`);
    }
  }

  const truckMarkers = new Map();
  function onTruck(p) {
    place(layers.trucks, truckMarkers, p.truck_id, p.lat, p.lon, icon("", "T", "", "truck"), p.truck_id);
  }

  // Cameras are drawn only while they have an open incident.
  async function loadIncidents() {
    if (!state.cameras.size) for (const c of await getJson("/v1/cctv/cameras")) state.cameras.set(c.id, c);
    const open = await getJson("/v1/cctv/incidents?state=open&limit=200");
    layers.cameras.clearLayers();
    const byCamera = new Map();
    for (const i of open) byCamera.set(i.camera_id, (byCamera.get(i.camera_id) || []).concat(i.kind));
    for (const [id, kinds] of byCamera) {
      const cam = state.cameras.get(id);
      if (!cam) continue;
      const word = [...new Set(kinds)].map((k) => pick(KINDS[`cctv_${k}`], k)).join(", ");
      layers.cameras.addLayer(L.marker([cam.lat, cam.lon], { icon: icon("c-crit", "■!", word, "camera"), title: cam.name }));
    }
  }

  // ---- alarms ---------------------------------------------------------------------------
  function age(iso) {
    const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    if (s < 90) return `${Math.round(s)} ${t("seconds")}`;
    if (s < 5400) return `${Math.round(s / 60)} ${t("minutes")}`;
    return `${Math.round(s / 3600)} ${t("hours")}`;
  }
  // Domains whose alarms change what a tile or a layer shows.
  const ALARM_REFRESH = { flood: ["flood", "gauges"], traffic: ["segments"], cctv: ["incidents"],
    prices: ["prices"], reports: ["reports"], procurement: ["procurement"], sources: ["sources"] };
  function onAlarm(a) {
    const known = state.alarms.get(a.id);
    if (known && known.version > a.version) return;
    if (a.state === "cleared") state.alarms.delete(a.id);
    else state.alarms.set(a.id, a);
    renderAlarms();
    for (const name of ALARM_REFRESH[a.domain] || []) scheduleSoon(name);
  }
  async function loadAlarms() {
    const page = await getJson("/v1/alarms?state=active&limit=1000");
    state.alarms.clear();
    for (const a of page.items) state.alarms.set(a.id, a);
    renderAlarms();
  }
  function renderAlarms() {
    // Acknowledged alarms keep their place (dimmed): a row must not jump away when acted on.
    const items = [...state.alarms.values()].sort((a, b) =>
      (SEVERITY[b.severity] || SEVERITY.info).rank - (SEVERITY[a.severity] || SEVERITY.info).rank ||
      Date.parse(b.started_at) - Date.parse(a.started_at));
    $("#alarm-count").textContent = `(${items.length})`;
    const list = $("#alarms");
    list.innerHTML = items.slice(0, SHOWN_ALARMS).map((a) => {
      const sev = SEVERITY[a.severity] || SEVERITY.info;
      const ctx = a.context || {};
      const where = [ctx.camera || ctx.name || "", ctx.kecamatan || ""].filter(Boolean).join(" · ");
      const acked = a.acknowledged_by
        ? `<span class="acked">✓ ${esc(t("acked_by"))}: ${esc(a.acknowledged_by)}</span>` : "";
      return `<li class="alarm sev-${esc(a.severity)}${a.acknowledged_by ? " is-acked" : ""}" data-alarm-id="${esc(a.id)}" data-domain="${esc(a.domain)}" data-state="${esc(a.state)}">
        <span class="sev">${sev.shape} ${sev[lang]}</span>
        <span class="what">${esc(pick(KINDS[a.kind], a.kind))}</span>
        <span class="age" data-since="${esc(a.started_at)}">${age(a.started_at)}</span>
        ${acked || `<span></span>`}
        <span class="meta">${esc(a.entity)} · ${esc(pick(DOMAINS[a.domain], a.domain))}${where ? " · " + esc(where) : ""}</span>
        <span class="actions">
          ${a.acknowledged_by ? "" : `<button class="ack" data-action="acknowledge">${esc(t("ack"))}</button>`}
          <button class="clear" data-action="clear">${esc(t("clear"))}</button>
        </span></li>`;
    }).join("");
    const more = items.length - SHOWN_ALARMS;
    $("#alarm-more").textContent = more > 0 ? `+${more} ${t("more")}` : "";
  }
  $("#alarms").addEventListener("click", (ev) => {
    const button = ev.target.closest("button[data-action]");
    if (!button) return;
    const row = button.closest("[data-alarm-id]");
    command(row.dataset.alarmId, button.dataset.action, row);
  });

  // A dialog, not window.prompt: readable on the wall, and the token field is a password.
  function ask(why, wantToken) {
    const dlg = $("#auth");
    $("#auth-why").textContent = why || "";
    $("#auth-name").value = sessionStorage.getItem("sitroom.operator") || "";
    $("#auth-token").value = "";
    $("#token-row").hidden = false;
    return new Promise((resolve) => {
      dlg.addEventListener("close", () => {
        if (dlg.returnValue !== "ok") return resolve(false);
        const name = $("#auth-name").value.trim(), token = $("#auth-token").value.trim();
        if (name) sessionStorage.setItem("sitroom.operator", name);
        if (token) sessionStorage.setItem("sitroom.token", token);
        resolve(Boolean(name || token || !wantToken));
      }, { once: true });
      dlg.showModal();
      (wantToken ? $("#auth-token") : $("#auth-name")).focus();
    });
  }
  function toast(text) {
    const el = $("#toast");
    el.textContent = text;
    el.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { el.hidden = true; }, 6000);
  }
  async function command(id, action, row) {
    if (!sessionStorage.getItem("sitroom.operator") && !sessionStorage.getItem("sitroom.token")) {
      if (!(await ask(t("need_name"), false))) return;
    }
    let why = null;
    for (let attempt = 0; attempt < 3; attempt++) {
      if (why && !(await ask(why, true))) return;
      const headers = { "content-type": "application/json", accept: "application/json" };
      const token = sessionStorage.getItem("sitroom.token");
      if (token) headers.authorization = `Bearer ${token}`;
      const by = sessionStorage.getItem("sitroom.operator") || "wall";
      const path = `/v1/alarms/${id.split("/").map(encodeURIComponent).join("/")}/${action}`;
      let r;
      try {
        r = await fetch(path, { method: "POST", headers, body: JSON.stringify({ by }) });
      } catch (e) {
        return toast(t("unavailable"));
      }
      const body = await r.json().catch(() => ({}));
      if (r.status === 202) {
        if (row) row.classList.add("pending");
        return toast(t(action === "clear" ? "sent_clear" : "sent_ack"));
      }
      if (r.status === 401) {
        why = token ? t("bad_token") : t("need_token");
        if (token) sessionStorage.removeItem("sitroom.token");
        continue;
      }
      if (r.status === 403) return toast(`${t("forbidden")}: ${body.detail || ""}`);
      if (r.status === 409 || r.status === 404) {
        toast(`${t("conflict")}: ${body.detail || ""}`);
        return quietly(loadAlarms)();
      }
      return toast(`${t("unavailable")} (${r.status})`);
    }
  }

  // ---- department tiles -----------------------------------------------------------------
  function tile(id, big, lines, good) {
    const el = $(`#tile-${id}`);
    el.classList.toggle("good", Boolean(good));
    el.classList.toggle("bad", !good);
    el.querySelector(".body").innerHTML = `<div class="big">${big}</div><ul>${lines.map((l) => `<li>${l}</li>`).join("")}</ul>`;
  }
  function activeOf(domain, kind) {
    return [...state.alarms.values()].filter((a) => a.domain === domain && (!kind || a.kind === kind));
  }
  async function loadPrices() {
    const city = await getJson("/v1/prices/city");
    const above = city.filter((c) => c.above_ceiling);
    const spikes = activeOf("prices", "price_spike"), silent = activeOf("prices", "market_silent");
    const het = activeOf("prices", "price_above_het");
    const n = above.length + het.length + spikes.length + silent.length;
    const lines = [
      ...above.map((c) => `■ ${esc(c.commodity_id)}: Rp ${Math.round(c.median_idr).toLocaleString("id-ID")} (${t("above_het")} Rp ${Math.round(c.ceiling_idr).toLocaleString("id-ID")})`),
      `▲ ${het.length} ${t("above_het")} · ${spikes.length} ${t("spikes")} · ${silent.length} ${t("silent_markets")}`,
      ...spikes.slice(0, 3).map((a) => `▲ ${esc(a.entity)}`),
    ];
    tile("prices", n ? `▲ ${n}` : `✓ ${t("none")}`, lines, n === 0);
  }
  async function loadReports() {
    const rows = (await getJson("/v1/reports/counts?by=department")).filter((r) => r.overdue_open > 0)
      .sort((a, b) => b.overdue_open - a.overdue_open);
    const total = rows.reduce((s, r) => s + r.overdue_open, 0);
    tile("reports", total ? `▲ ${total} ${t("overdue")}` : `✓ ${t("none")}`,
      rows.slice(0, 4).map((r) => `▲ ${esc(r.key)}: ${r.overdue_open}`), total === 0);
  }
  async function loadProcurement() {
    const rows = (await getJson("/v1/procurement/stats?by=agency")).filter((r) => r.flagged > 0)
      .sort((a, b) => b.flagged - a.flagged);
    const total = rows.reduce((s, r) => s + r.flagged, 0);
    tile("procurement", total ? `▲ ${total} ${t("flagged")}` : `✓ ${t("none")}`,
      rows.slice(0, 4).map((r) => `▲ ${esc(r.name || r.key)}: ${r.flagged}`), total === 0);
  }
  async function loadSources() {
    const situation = await getJson("/v1/situation");
    const silent = new Map(activeOf("sources", "source_silent").map((a) => [a.entity, t("silent")]));
    for (const c of situation.connectors || []) {
      if (c.state !== "running" && c.state !== "finished") silent.set(c.connector, t("stopped"));
    }
    const lines = [...silent].map(([name, why]) => `■ ${esc(name)}: ${esc(why)}`);
    tile("sources", silent.size ? `■ ${silent.size}` : `✓ ${t("all_running")}`, lines.slice(0, 5), silent.size === 0);
  }

  // ---- live -----------------------------------------------------------------------------
  function setLive(on, text) {
    const el = $("#live");
    el.classList.toggle("on", on);
    el.classList.toggle("off", !on);
    $("#live-mark").textContent = on ? "●" : "○";
    $("#live-text").textContent = text;
    document.body.dataset.live = on ? "on" : "off";
  }
  const HANDLERS = {
    "sitroom.alarms": onAlarm, "transit.vehicle-positions": onPosition,
    "flood.gauge-readings": onReading, "waste.truck-positions": onTruck,
    "cctv.events": () => scheduleSoon("incidents"), "sitroom.source-heartbeats": () => scheduleSoon("sources"),
  };
  function connect() {
    const url = "/v1/live/wall" + (state.lastEventId ? `?last_event_id=${encodeURIComponent(state.lastEventId)}` : "");
    const es = new EventSource(url);
    state.source = es;
    const remember = (ev) => {
      if (ev.lastEventId) state.lastEventId = ev.lastEventId;
      state.lastEventAt = Date.now();
    };
    es.addEventListener("sitroom.ready", (ev) => {
      remember(ev);
      state.retryMs = 2000;
      setLive(true, t("live"));
      // A fresh start (not a resume) begins now: what happened before comes from the API.
      if (!JSON.parse(ev.data).resumed) reloadAll();
    });
    es.addEventListener("sitroom.resync", () => reloadAll());
    for (const [topic, handle] of Object.entries(HANDLERS)) {
      es.addEventListener(topic, (ev) => {
        remember(ev);
        try { handle(JSON.parse(ev.data)); } catch (e) { console.warn(topic, e); }
      });
    }
    es.onerror = () => {
      setLive(false, t("reconnecting"));
      // The browser retries by itself (sending Last-Event-ID) unless the answer was an
      // error (a 503 when the API is full): then reconnect here, resuming by query.
      if (es.readyState === EventSource.CLOSED) {
        setTimeout(connect, state.retryMs);
        state.retryMs = Math.min(state.retryMs * 2, 30000);
      }
    };
  }

  // ---- refreshes ------------------------------------------------------------------------
  const LOADERS = {
    alarms: loadAlarms, buses: loadBuses, gauges: loadGauges, flood: loadFlood,
    segments: loadSegments, incidents: loadIncidents, prices: loadPrices, reports: loadReports,
    procurement: loadProcurement, sources: loadSources,
  };
  const PERIOD_S = { alarms: 60, buses: 30, gauges: 60, flood: 20, segments: 30, incidents: 20,
    prices: 60, reports: 60, procurement: 120, sources: 30 };
  const soon = new Map();
  function scheduleSoon(name) {
    if (soon.has(name)) return;
    soon.set(name, setTimeout(() => { soon.delete(name); quietly(LOADERS[name])(); }, 3000));
  }
  function reloadAll() {
    // Alarms first: the tiles read them too.
    quietly(loadAlarms)().then(() => {
      for (const name of Object.keys(LOADERS)) if (name !== "alarms") quietly(LOADERS[name])();
    });
  }
  for (const [name, s] of Object.entries(PERIOD_S)) setInterval(quietly(LOADERS[name]), s * 1000);

  function applyLanguage() {
    document.documentElement.lang = lang;
    document.title = t("title");
    document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
    $("#lang").textContent = t("lang_switch");
    $("#legend").innerHTML = ["legend_bus", "legend_gauge", "legend_road", "legend_other"]
      .map((k) => `<div>${esc(t(k))}</div>`).join("");
    setLive(document.body.dataset.live === "on", t(document.body.dataset.live === "on" ? "live" : "reconnecting"));
    if (state.liveBuses.size) $("#bus-count").textContent = `▶ ${state.liveBuses.size} ${t("buses")}`;
    renderAlarms();
    restyleKecamatan();
    state.gauges.forEach(drawGauge);
  }
  $("#lang").addEventListener("click", () => {
    lang = lang === "id" ? "en" : "id";
    localStorage.setItem("sitroom.lang", lang);
    applyLanguage();
    reloadAll();  // tiles and markers carry words too
  });

  setInterval(() => {
    const now = new Date();
    $("#clock").textContent = now.toLocaleTimeString(lang === "en" ? "en-GB" : "id-ID", { timeZone: "Asia/Jakarta" }) + " WIB";
    document.querySelectorAll(".age[data-since]").forEach((el) => { el.textContent = age(el.dataset.since); });
    // Connected but nothing for a minute: say so rather than show a frozen room as live.
    if (document.body.dataset.live === "on" && state.lastEventAt && Date.now() - state.lastEventAt > 60000) {
      setLive(false, t("stale"));
    }
  }, 1000);

  async function start() {
    try {
      state.config = await getJson("/wall/config.json");
    } catch (e) { console.warn(e); }
    if (state.config.tile_url) {
      L.tileLayer(state.config.tile_url, { attribution: state.config.tile_attribution || "", maxZoom: 19 }).addTo(map);
      layers.kecamatan.bringToBack();
    }
    try {
      layers.kecamatan.addData(await getJson("/v1/layers/kecamatan"));
      map.fitBounds(layers.kecamatan.getBounds(), { padding: [10, 10] });
    } catch (e) { console.warn(e); }
    setLive(false, t("reconnecting"));
    applyLanguage();
    connect();
  }
  // For the browser test and for a look from the console: what the page holds.
  window.sitroomWall = { alarm: (id) => state.alarms.get(id) || null, lastEventId: () => state.lastEventId };
  start();
})();
