// Injected into a copy of a Snakemake report by tests/test_workflow_report.py and run by headless
// Chromium. It drives the report's own React app (the global `app`, as its "view" buttons do)
// to show every result, waits for each plot's <img> to load, measures its pixels on a canvas, and
// writes what it found as JSON into a pre element, id snaketune-probe, for `chromium --dump-dom`.
// With `#show=<file name>` in the URL it shows only that plot and stops (for a screenshot).
// First, before it clicks anything, it records the landing page: its text, where its heading and
// images are, in the window, and whether each image has loaded and has ink.
(async () => {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const inked = (img) => {
    const canvas = document.createElement("canvas");
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(img, 0, 0);
    const px = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    let n = 0, sum = 0, sum2 = 0, nonwhite = 0;
    const colours = new Set();
    for (let i = 0; i < px.length; i += 4 * 7) {
      const lum = 0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2];
      n++; sum += lum; sum2 += lum * lum;
      if (lum < 245) nonwhite++;
      if (colours.size < 1000) colours.add((px[i] << 16) | (px[i + 1] << 8) | px[i + 2]);
    }
    return { std: Math.sqrt(Math.max(sum2 / n - (sum / n) ** 2, 0)), nonwhite: nonwhite / n, colours: colours.size };
  };
  const box = (el) => {
    const r = el.getBoundingClientRect();
    return { top: r.top, bottom: r.bottom, left: r.left, right: r.right };
  };
  const landing = async () => {
    let desc = null;
    for (let i = 0; i < 400 && !desc; i++) {
      desc = document.querySelector("#app .prose");
      if (!desc) await sleep(25);
    }
    if (!desc) return null;
    const imgs = [...desc.querySelectorAll("img")];
    for (let i = 0; i < 400 && !imgs.every((img) => img.complete); i++) await sleep(25);
    const heading = desc.querySelector("h1, h2");
    return {
      view: app.state.content,
      window: [innerWidth, innerHeight],
      text: desc.innerText,
      heading: heading ? { text: heading.textContent, ...box(heading) } : null,
      rows: [...desc.querySelectorAll("tr")].map((tr) => [...tr.children].map((c) => c.textContent)),
      images: imgs.map((img) => ({
        alt: img.alt, src: img.getAttribute("src").slice(0, 40), width: img.naturalWidth, height: img.naturalHeight,
        ...box(img), ...(img.naturalWidth > 0 ? inked(img) : {}),
      })),
    };
  };
  const out = { app: false, images: [], tables: [], errors: [] };
  const report = document.createElement("pre");
  report.id = "snaketune-probe";
  try {
    for (let i = 0; i < 200 && typeof app === "undefined"; i++) await sleep(25);
    out.app = typeof app !== "undefined";
    out.categories = Object.keys(categories);
    out.landing = await landing();
    const show = new URLSearchParams(location.hash.slice(1)).get("show");
    for (const [path, entry] of Object.entries(results)) {
      if (show && !path.endsWith(show)) continue;
      if (entry.mime_type.startsWith("image/")) {
        // What the report's own "view" button does (ButtonViewManager.handleImg).
        app.setView({ content: "img", contentPath: entry.data_uri, resultPath: path });
        let img = null;
        for (let i = 0; i < 400; i++) {
          img = [...document.querySelectorAll("#app img")].find((el) => el.getAttribute("src") === entry.data_uri);
          if (img && img.complete && img.naturalWidth > 0) break;
          await sleep(25);
        }
        const rec = { path, name: entry.name, shown: !!img, width: img ? img.naturalWidth : 0, height: img ? img.naturalHeight : 0 };
        if (img && img.naturalWidth > 0) {
          Object.assign(rec, inked(img));
          const r = img.getBoundingClientRect();
          rec.rendered = [r.width, r.height];
        }
        out.images.push(rec);
        if (show) break;
      } else if (entry.mime_type === "text/html") {
        app.setView({ content: "html", contentPath: entry.data_uri, resultPath: path });
        await sleep(100);
        const frame = [...document.querySelectorAll("#app iframe")].find((el) => el.getAttribute("src") === entry.data_uri);
        const b64 = entry.data_uri.slice(entry.data_uri.indexOf("base64,") + 7);
        const text = new TextDecoder().decode(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)));
        const doc = new DOMParser().parseFromString(text, "text/html");
        out.tables.push({ path, name: entry.name, shown: !!frame, rows: doc.querySelectorAll("tbody tr").length,
                          columns: [...doc.querySelectorAll("thead th")].map((th) => th.textContent) });
      }
    }
  } catch (e) {
    out.errors.push(String(e && e.stack || e));
  }
  report.textContent = JSON.stringify(out);
  document.body.appendChild(report);
  document.title = "snaketune-probe-done";
})();
