// Two small charts in plain SVG: bars (messages per day) and a line (loss per step).
"use strict";

const SVG = "http://www.w3.org/2000/svg";

function svgElement(name, attributes = {}) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  return element;
}

function chartFrame(width, height, label) {
  const svg = svgElement("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label,
                                  preserveAspectRatio: "none" });
  svg.append(svgElement("title"));
  svg.firstChild.textContent = label;
  return svg;
}

// days: [{day, user, assistant}] -> stacked bars, user below, assistant above.
function barChart(days) {
  const width = 600, height = 160, pad = 20;
  const total = days.reduce((sum, d) => sum + d.user + d.assistant, 0);
  const svg = chartFrame(width, height, `Messages per day: ${total} in the last ${days.length} active days`);
  const max = Math.max(1, ...days.map((d) => d.user + d.assistant));
  const step = (width - 2 * pad) / Math.max(1, days.length);
  days.forEach((d, i) => {
    const x = pad + i * step + step * 0.1, barWidth = step * 0.8;
    const userHeight = (d.user / max) * (height - 2 * pad), botHeight = (d.assistant / max) * (height - 2 * pad);
    const base = height - pad;
    const user = svgElement("rect", { x, y: base - userHeight, width: barWidth, height: userHeight, class: "bar-user" });
    const bot = svgElement("rect", { x, y: base - userHeight - botHeight, width: barWidth, height: botHeight,
                                     class: "bar-assistant" });
    const tip = svgElement("title");
    tip.textContent = `${d.day}: ${d.user} from people, ${d.assistant} replies`;
    const group = svgElement("g");
    group.append(user, bot, tip);
    svg.append(group);
  });
  svg.append(svgElement("line", { x1: pad, y1: height - pad, x2: width - pad, y2: height - pad, class: "axis" }));
  return svg;
}

// points: [[step, loss], ...] -> a polyline scaled to the frame.
function lineChart(points, label) {
  const width = 300, height = 80, pad = 6;
  const svg = chartFrame(width, height, label);
  if (points.length === 0) return svg;
  const steps = points.map((p) => p[0]), losses = points.map((p) => p[1]);
  const [minX, maxX] = [Math.min(...steps), Math.max(...steps)];
  const [minY, maxY] = [Math.min(...losses), Math.max(...losses)];
  const x = (s) => pad + ((s - minX) / Math.max(1e-9, maxX - minX)) * (width - 2 * pad);
  const y = (l) => height - pad - ((l - minY) / Math.max(1e-9, maxY - minY)) * (height - 2 * pad);
  svg.append(svgElement("polyline", { points: points.map(([s, l]) => `${x(s)},${y(l)}`).join(" "),
                                      class: "loss-line" }));
  return svg;
}
