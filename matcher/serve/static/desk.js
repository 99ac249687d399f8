// The desk's only script: post feedback from the result page and follow batch progress.
"use strict";

function el(id) { return document.getElementById(id); }

// Korean names from the forward list's options (value: id, text: name).
function nameOf(id) {
  const option = document.querySelector(`#forward-to option[value="${CSS.escape(id)}"]`);
  return option ? option.textContent : id;
}

async function postFeedback(verdict, institutes, card) {
  const result = el("result");
  const status = el("feedback-status");
  const who = el("who").value.trim();
  localStorage.setItem("matcher-who", who);
  const body = {
    request_id: result.dataset.requestId,
    text: el("request-text").value,
    who: who || null,
    note: el("note").value.trim() || null,
    accepted: [], rejected: [], forwarded: [],
  };
  body[verdict] = institutes;
  status.className = "status";
  status.textContent = "저장 중…";
  try {
    const response = await fetch("/api/feedback", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    const data = await response.json();
    if (!response.ok) throw new Error(data.error || response.statusText);
    const word = { accepted: "수락", rejected: "거절", forwarded: "전달" }[verdict];
    const names = (ids) => ids.map(nameOf).join(", ");
    let text = `저장됨 (기록 #${data.decision}): ${word} ${names(institutes)} — 수락 ${names(data.accepted) || "없음"} · 거절 ${names(data.rejected) || "없음"}`;
    if (data.forwarded.length) text += ` · 전달 ${names(data.forwarded)}`;
    status.className = "status saved";
    status.textContent = text;
    if (card) {
      card.classList.remove("decided-accepted", "decided-rejected");
      card.classList.add(`decided-${verdict}`);
    }
  } catch (err) {
    status.className = "status failed";
    status.textContent = `저장하지 못했습니다: ${err.message}`;
  }
}

function setupDesk() {
  const result = el("result");
  if (!result) return;
  el("who").value = localStorage.getItem("matcher-who") || "";
  result.querySelectorAll(".rec button[data-verdict]").forEach((button) => {
    button.addEventListener("click", () => {
      const card = button.closest(".rec");
      postFeedback(button.dataset.verdict, card.dataset.institutes.split(","), card);
    });
  });
  el("forward-to").addEventListener("change", () => { el("forward").disabled = !el("forward-to").value; });
  el("forward").addEventListener("click", () => postFeedback("forwarded", [el("forward-to").value], null));
}

function setupBatch() {
  const rows = document.querySelectorAll("tr[data-job]");
  const active = () => [...rows].some((r) => ["queued", "running"].includes(r.dataset.status));
  if (!rows.length || !active()) return;
  const timer = setInterval(async () => {
    const response = await fetch("/api/batch");
    if (!response.ok) return;
    const { jobs } = await response.json();
    let finished = false;
    for (const job of jobs) {
      const row = document.querySelector(`tr[data-job="${job.id}"]`);
      if (!row) continue;
      const bar = row.querySelector("progress");
      bar.max = job.total || 1;
      bar.value = job.handled;
      row.querySelector(".count").textContent = `${job.handled}/${job.total}`;
      row.querySelector(".done").textContent = job.done;
      row.querySelector(".errors").textContent = job.errors;
      row.querySelector(".abstained").textContent = job.abstained;
      if (row.dataset.status !== job.status && ["done", "failed"].includes(job.status)) finished = true;
      row.dataset.status = job.status;
    }
    if (finished) { clearInterval(timer); location.reload(); }
  }, 1000);
}

document.addEventListener("DOMContentLoaded", () => { setupDesk(); setupBatch(); });
