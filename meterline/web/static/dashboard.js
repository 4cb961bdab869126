// The dashboard's behaviour: charts drawn from the page's JSON blocks (never inline script),
// and filters and paging that swap the page's <main> instead of reloading the whole page.
"use strict";
(function () {
  // Tooltips are HTML: names come from usage reports, so they are escaped.
  function esc(text) {
    return String(text).replace(/[&<>"']/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c];
    });
  }

  function readJson(id) {
    var block = document.getElementById(id);
    return block ? JSON.parse(block.textContent) : null;
  }

  function pie(element, slices, currency, labels) {
    var top = slices.slice(0, 8), rest = slices.slice(8);
    var data = top.map(function (s) { return {name: s.name || "-", value: Number(s.cost), exact: s.cost}; });
    if (rest.length) {
      var other = rest.reduce(function (sum, s) { return sum + Number(s.cost); }, 0);
      data.push({name: labels.other, value: other, exact: String(other)});
    }
    echarts.init(element).setOption({
      tooltip: {formatter: function (p) { return esc(p.name) + ": " + esc(p.data.exact) + " " + esc(currency) + " (" + p.percent + "%)"; }},
      series: [{type: "pie", radius: ["35%", "70%"], data: data}]
    });
  }

  function drawCharts() {
    var data = readJson("chart-data"), labels = readJson("chart-labels");
    if (!data || typeof echarts === "undefined") return;
    var trend = document.getElementById("trend-chart");
    if (trend) {
      echarts.init(trend).setOption({
        tooltip: {trigger: "axis", formatter: function (items) {
          var i = items[0].dataIndex;
          return esc(data.trend.days[i]) + "<br>" + esc(labels.cost) + ": " +
            esc(data.trend.costs[i]) + " " + esc(data.currency) + "<br>" + esc(labels.calls) +
            ": " + esc(data.trend.calls[i]);
        }},
        xAxis: {type: "category", data: data.trend.days},
        yAxis: {type: "value", name: data.currency},
        series: [{type: "bar", name: labels.cost, data: data.trend.costs.map(Number),
                  markLine: {data: [{yAxis: Number(data.trend.average), name: labels.average}]}}]
      });
    }
    var providers = document.getElementById("provider-chart");
    if (providers) pie(providers, data.providers, data.currency, labels);
    var models = document.getElementById("model-chart");
    if (models) pie(models, data.models, data.currency, labels);
  }

  function swap(url, push) {
    var main = document.querySelector("main");
    main.classList.add("loading");
    fetch(url, {credentials: "same-origin", headers: {"accept": "text/html"}})
      .then(function (answer) {
        if (answer.redirected || !answer.headers.get("content-type").startsWith("text/html")) {
          window.location.assign(answer.url);
          return null;
        }
        return answer.text();
      })
      .then(function (html) {
        if (html === null) return;
        var page = new DOMParser().parseFromString(html, "text/html");
        main.replaceWith(page.querySelector("main"));
        document.querySelector("header").replaceWith(page.querySelector("header"));
        document.title = page.title;
        if (push) history.pushState(null, "", url);
        drawCharts();
      })
      .catch(function () { window.location.assign(url); });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.classList.contains("filters")) return;
    event.preventDefault();
    var query = new URLSearchParams();
    new FormData(form).forEach(function (value, name) { if (value) query.append(name, value); });
    swap(form.getAttribute("action") + "?" + query.toString(), true);
  });
  document.addEventListener("click", function (event) {
    var link = event.target.closest("a.swap");
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey) return;
    event.preventDefault();
    swap(link.getAttribute("href"), true);
  });
  window.addEventListener("popstate", function () { swap(location.pathname + location.search, false); });
  document.addEventListener("DOMContentLoaded", drawCharts);
})();
