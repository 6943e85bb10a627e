// vulnwatch line charts: own small SVG code, no library. Each <figure data-chart="ID"> is drawn
// from the JSON in <script type="application/json" id="ID">: {"series": [{"name", "points":
// [[iso time, value], ...]}]}, or, with data-chart-src="URL", from a trend document fetched
// from the API (so a page does not wait for a fleet-wide aggregate). Every point becomes a <circle> carrying data-series, data-at and
// data-value, so what is drawn can be checked against the API.
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var W = 800, H = 240, L = 48, R = 16, T = 12, B = 28;

  function el(name, attrs, parent) {
    var e = document.createElementNS(NS, name);
    for (var k in attrs) { if (Object.prototype.hasOwnProperty.call(attrs, k)) e.setAttribute(k, attrs[k]); }
    if (parent) parent.appendChild(e);
    return e;
  }

  function niceMax(v) {
    if (v <= 5) return 5;
    var p = Math.pow(10, Math.floor(Math.log10(v)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) { if (steps[i] * p >= v) return steps[i] * p; }
    return 10 * p;
  }

  function fmtTime(ms, span) {
    var d = new Date(ms);
    var iso = d.toISOString();
    return span < 120e3 ? iso.slice(11, 23) : span < 2 * 86400e3 ? iso.slice(11, 19) : iso.slice(0, 10);
  }

  // A /api/v1 trend document ({"points": [{"at", "total", "counts": {...}}]}) as chart series:
  // the total, and each severity that is ever non-zero (what the server embeds for other charts).
  function trendSeries(doc) {
    var points = doc.points || [];
    var series = [{name: "total", points: points.map(function (p) { return [p.at, p.total]; })}];
    ["CRITICAL", "HIGH", "MEDIUM", "LOW", "NEGLIGIBLE", "UNKNOWN"].forEach(function (sev) {
      if (points.some(function (p) { return p.counts[sev]; })) {
        series.push({name: sev, points: points.map(function (p) { return [p.at, p.counts[sev]]; })});
      }
    });
    return {series: series};
  }

  function load(fig) {
    var src = fig.getAttribute("data-chart-src");
    if (!src) {
      var holder = document.getElementById(fig.getAttribute("data-chart"));
      if (!holder) return;
      try { draw(fig, JSON.parse(holder.textContent)); } catch (e) { /* leave the figure empty */ }
      return;
    }
    fetch(src, {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
      .then(function (doc) { draw(fig, trendSeries(doc)); })
      .catch(function (e) {
        var p = document.createElement("p"); p.className = "error-text"; p.textContent = "Chart unavailable: " + e.message;
        fig.appendChild(p);
      });
  }

  function draw(fig, data) {
    var series = (data.series || []).filter(function (s) { return s.points && s.points.length; });
    if (!series.length) {
      var p = document.createElement("p"); p.className = "muted"; p.textContent = "No scans recorded yet.";
      fig.appendChild(p); fig.setAttribute("data-drawn", "0");
      return;
    }
    var xs = [], ymax = 0;
    series.forEach(function (s) {
      s.points.forEach(function (pt) { xs.push(Date.parse(pt[0])); ymax = Math.max(ymax, pt[1]); });
    });
    var x0 = Math.min.apply(null, xs), x1 = Math.max.apply(null, xs), span = x1 - x0;
    var top = niceMax(ymax);
    function X(ms) { return span ? L + (ms - x0) / span * (W - L - R) : L + (W - L - R) / 2; }
    function Y(v) { return H - B - v / top * (H - T - B); }

    var svg = el("svg", {viewBox: "0 0 " + W + " " + H, class: "linechart", role: "img",
                         "aria-label": fig.getAttribute("aria-label") || "chart"});
    var grid = el("g", {class: "grid"}, svg);
    for (var i = 0; i <= 4; i++) {
      var v = top * i / 4, y = Y(v);
      el("line", {x1: L, x2: W - R, y1: y, y2: y}, grid);
      el("text", {x: L - 6, y: y + 4, class: "ylabel"}, grid).textContent = String(Math.round(v));
    }
    var ticks = span ? 4 : 0;
    for (var j = 0; j <= ticks; j++) {
      var ms = x0 + (span ? span * j / ticks : 0);
      el("text", {x: X(ms), y: H - 8, class: "xlabel"}, grid).textContent = fmtTime(ms, span);
    }
    series.forEach(function (s) {
      var g = el("g", {class: "series series-" + s.name, "data-series": s.name}, svg);
      var pts = s.points.map(function (pt) { return X(Date.parse(pt[0])).toFixed(1) + "," + Y(pt[1]).toFixed(1); });
      el("polyline", {points: pts.join(" ")}, g);
      s.points.forEach(function (pt) {
        var c = el("circle", {cx: X(Date.parse(pt[0])).toFixed(1), cy: Y(pt[1]).toFixed(1), r: 3.5, class: "point",
                              "data-series": s.name, "data-at": pt[0], "data-value": pt[1]}, g);
        el("title", {}, c).textContent = s.name + ": " + pt[1] + " at " + pt[0];
      });
    });
    fig.appendChild(svg);
    var legend = document.createElement("ul");
    legend.className = "legend";
    series.forEach(function (s) {
      var li = document.createElement("li");
      li.className = "series-" + s.name;
      li.textContent = s.name.toLowerCase() + " " + s.points[s.points.length - 1][1];
      legend.appendChild(li);
    });
    fig.appendChild(legend);
    fig.setAttribute("data-drawn", String(series.reduce(function (n, s) { return n + s.points.length; }, 0)));
  }

  function init() { Array.prototype.forEach.call(document.querySelectorAll("figure[data-chart]"), load); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init); else init();
})();
