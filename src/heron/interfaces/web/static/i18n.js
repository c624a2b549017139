// Interface text in English and Chinese; the language comes from localStorage, else the browser.

const TEXT = {
  en: {
    skip: "Skip to content", views: "Views",
    "tab.search": "Search", "tab.index": "Index", "tab.duplicates": "Duplicates",
    "tab.vectors": "Vectors", "tab.memory": "Memory",
    "lang.switch": "Switch language", "lang.other": "中文",
    "search.label": "Search query", "search.placeholder": "Search pictures, pages, slides, videos…",
    "search.go": "Search", "search.byImage": "By image…", "search.imageQuery": "Searching by this picture",
    "search.clearImage": "Clear the picture", "search.results": "Results",
    "search.drop": "Drop a picture to search by it",
    "search.hits": "{n} results in {ms} ms", "search.none": "Nothing relevant found.",
    "search.searching": "Searching…", "search.like": "More like this",
    "search.likeOf": "More like {name}", "search.relevance": "relevance",
    "filters.legend": "Filters (written into the query)", "filters.kind": "Kind", "filters.any": "any",
    "filters.from": "Taken from", "filters.to": "to", "filters.colour": "Colour",
    "filters.category": "Category", "filters.tag": "Tag", "filters.minRelevance": "Min. relevance",
    "filters.default": "default",
    "kind.image": "image", "kind.page": "page", "kind.figure": "figure", "kind.slide": "slide",
    "kind.frame": "video frame", "kind.passage": "passage",
    "index.title": "Add files to the library", "index.pick": "Files (pictures, PDF, PPTX, DOCX, video, text)",
    "index.upload": "Upload and index", "index.progress": "Indexing progress",
    "index.file": "File", "index.type": "Type", "index.outcome": "Outcome", "index.reason": "Reason",
    "index.status": "{state}: {done} of {total} files · {rate} files/s · ETA {eta}",
    "index.none": "Choose at least one file.", "index.uploading": "Uploading…",
    "dup.title": "Duplicates", "dup.reload": "Find duplicates", "dup.unignore": "Show ignored again",
    "dup.sets": "{n} duplicate sets", "dup.none": "No duplicates found.", "dup.finding": "Looking for duplicates…",
    "dup.keep": "Keep this, delete the others", "dup.ignore": "Ignore this set", "dup.kept": "best copy",
    "dup.exact": "exact copies", "dup.near": "near duplicates",
    "dup.exactNote": "Exact copies are one item: remove the extra files on disk.",
    "dup.confirm": "Delete {n} file(s) from the library, keeping {name}?",
    "vec.title": "Vectors", "vec.label": "Query to embed", "vec.placeholder": "a query to embed",
    "vec.show": "Show its vector", "vec.values": "The query's vector: first 32 values",
    "vec.valuesOf": "{dim}-d vector of “{text}” ({model}), norm {norm}: first 32 values",
    "vec.nearest": "Nearest units (cosine similarity)", "vec.map": "Map of the library (PCA of stored vectors)",
    "vec.mapOf": "Map of {n} of {total} stored vectors (PCA: {a}% + {b}% of the variance)",
    "vec.query": "the query",
    "mem.title": "Memory and disk", "mem.more": "Project for N more units",
    "mem.key": "API key (for a server that requires one)",
    "key.signedIn": "Signed in with key {key} ({role}).", "key.notNeeded": "This server needs no key.",
    "mem.model": "Model", "mem.dim": "Dimension", "mem.units": "Units", "mem.unitsOf": "Units: {kind}",
    "mem.vectors": "Vectors ({units} × {dim} × 4 bytes)", "mem.store": "Vector store on disk",
    "mem.thumbs": "Thumbnails on disk", "mem.catalog": "Catalog on disk", "mem.total": "Total on disk",
    "mem.projVectors": "{n} more units: vectors ({n} × {dim} × 4 bytes)",
    "mem.projDisk": "{n} more units: on disk (at {per} per unit)",
    "mem.projTotal": "Library of {n} units: vectors in memory",
    "item.text": "Text", "item.tags": "Tags", "item.fields": "Details", "item.duplicates": "Duplicates",
    "item.noDups": "None.", "item.in": "In {name}", "item.open": "Open the document at page {page}",
    "item.openFile": "Open the file", "item.openVideo": "Video at {time}", "item.noText": "No text.",
    "item.user": "your tags", "item.category": "category", "item.colours": "colours", "item.scheme": "scheme",
    "close": "Close", "error": "Error: {message}",
  },
  zh: {
    skip: "跳到内容", views: "视图",
    "tab.search": "搜索", "tab.index": "索引", "tab.duplicates": "重复项",
    "tab.vectors": "向量", "tab.memory": "内存",
    "lang.switch": "切换语言", "lang.other": "English",
    "search.label": "搜索内容", "search.placeholder": "搜索图片、页面、幻灯片、视频……",
    "search.go": "搜索", "search.byImage": "以图搜索…", "search.imageQuery": "正在以这张图片搜索",
    "search.clearImage": "清除图片", "search.results": "搜索结果",
    "search.drop": "拖放图片即可以图搜索",
    "search.hits": "{n} 个结果，用时 {ms} 毫秒", "search.none": "没有找到相关结果。",
    "search.searching": "正在搜索……", "search.like": "更多类似",
    "search.likeOf": "与 {name} 类似", "search.relevance": "相关度",
    "filters.legend": "筛选（写入搜索框）", "filters.kind": "类型", "filters.any": "全部",
    "filters.from": "拍摄起始", "filters.to": "至", "filters.colour": "颜色",
    "filters.category": "类别", "filters.tag": "标签", "filters.minRelevance": "最低相关度",
    "filters.default": "默认",
    "kind.image": "图片", "kind.page": "页面", "kind.figure": "插图", "kind.slide": "幻灯片",
    "kind.frame": "视频帧", "kind.passage": "段落",
    "index.title": "向库中添加文件", "index.pick": "文件（图片、PDF、PPTX、DOCX、视频、文本）",
    "index.upload": "上传并索引", "index.progress": "索引进度",
    "index.file": "文件", "index.type": "类型", "index.outcome": "结果", "index.reason": "原因",
    "index.status": "{state}：{done}/{total} 个文件 · 每秒 {rate} 个 · 剩余 {eta}",
    "index.none": "请至少选择一个文件。", "index.uploading": "正在上传……",
    "dup.title": "重复项", "dup.reload": "查找重复项", "dup.unignore": "重新显示已忽略的",
    "dup.sets": "{n} 组重复", "dup.none": "没有发现重复项。", "dup.finding": "正在查找重复项……",
    "dup.keep": "保留这个，删除其余", "dup.ignore": "忽略这一组", "dup.kept": "最佳副本",
    "dup.exact": "完全相同", "dup.near": "近似重复",
    "dup.exactNote": "完全相同的副本是同一条目：请在磁盘上删除多余的文件。",
    "dup.confirm": "从库中删除 {n} 个文件，保留 {name}？",
    "vec.title": "向量", "vec.label": "要嵌入的查询", "vec.placeholder": "输入要嵌入的查询",
    "vec.show": "显示向量", "vec.values": "查询向量：前 32 个值",
    "vec.valuesOf": "“{text}”的 {dim} 维向量（{model}），范数 {norm}：前 32 个值",
    "vec.nearest": "最近的单元（余弦相似度）", "vec.map": "库的地图（存储向量的 PCA）",
    "vec.mapOf": "{total} 个存储向量中的 {n} 个（PCA：方差的 {a}% + {b}%）",
    "vec.query": "查询",
    "mem.title": "内存与磁盘", "mem.more": "预估再增加 N 个单元",
    "mem.key": "API 密钥（服务器要求时填写）",
    "key.signedIn": "已用密钥 {key}（{role}）登录。", "key.notNeeded": "此服务器无需密钥。",
    "mem.model": "模型", "mem.dim": "维度", "mem.units": "单元", "mem.unitsOf": "单元：{kind}",
    "mem.vectors": "向量（{units} × {dim} × 4 字节）", "mem.store": "向量库磁盘占用",
    "mem.thumbs": "缩略图磁盘占用", "mem.catalog": "目录磁盘占用", "mem.total": "磁盘总占用",
    "mem.projVectors": "再增加 {n} 个单元：向量（{n} × {dim} × 4 字节）",
    "mem.projDisk": "再增加 {n} 个单元：磁盘（每单元 {per}）",
    "mem.projTotal": "共 {n} 个单元的库：内存中的向量",
    "item.text": "文字", "item.tags": "标签", "item.fields": "详细信息", "item.duplicates": "重复项",
    "item.noDups": "无。", "item.in": "来自 {name}", "item.open": "打开文档第 {page} 页",
    "item.openFile": "打开文件", "item.openVideo": "视频 {time} 处", "item.noText": "没有文字。",
    "item.user": "你的标签", "item.category": "类别", "item.colours": "颜色", "item.scheme": "色调",
    "close": "关闭", "error": "出错：{message}",
  },
};

let current = pick();

function pick() {
  const saved = localStorage.getItem("heron.lang");
  if (saved === "en" || saved === "zh") return saved;
  return (navigator.language || "en").toLowerCase().startsWith("zh") ? "zh" : "en";
}

export function lang() { return current; }

export function t(key, values = {}) {
  const text = TEXT[current][key] ?? TEXT.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in values ? String(values[name]) : `{${name}}`));
}

export function setLang(code) {
  current = code === "zh" ? "zh" : "en";
  localStorage.setItem("heron.lang", current);
  apply();
}

export function apply(root = document) {
  document.documentElement.lang = current === "zh" ? "zh-CN" : "en";
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-ph]")) el.placeholder = t(el.dataset.i18nPh);
  for (const el of root.querySelectorAll("[data-i18n-aria]")) el.setAttribute("aria-label", t(el.dataset.i18nAria));
  const toggle = document.getElementById("lang-toggle");
  if (toggle) {
    toggle.textContent = t("lang.other");
    toggle.setAttribute("aria-label", t("lang.switch"));
  }
  document.dispatchEvent(new CustomEvent("heron:lang"));
}
