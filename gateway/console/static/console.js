// The console's few live parts, in plain JavaScript (no build step, nothing fetched from
// elsewhere): live fragments over /console/live, and the composer's previews and send.
const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";

function watchLive() {
  const target = document.querySelector("[data-live]");
  if (!target) return;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/console/live`);
  socket.addEventListener("open", () => {
    socket.send(JSON.stringify({ watch: target.dataset.live, ...target.dataset }));
  });
  socket.addEventListener("message", (event) => {
    const update = JSON.parse(event.data);
    if (update.html !== undefined) target.innerHTML = update.html;
  });
  socket.addEventListener("close", () => setTimeout(watchLive, 3000));
}

async function post(url, body) {
  const answer = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: JSON.stringify(body),
  });
  return { status: answer.status, body: await answer.json() };
}

function problemsText(body) {
  const problems = body.problems ?? [];
  return problems.length ? problems.map((p) => `${p.field}: ${p.message}`).join("; ") : body.message;
}

function readContent() {
  const error = document.getElementById("content-error");
  try {
    error.hidden = true;
    return JSON.parse(document.getElementById("content").value);
  } catch (problem) {
    error.textContent = `content: not valid JSON (${problem.message})`;
    error.hidden = false;
    return undefined;
  }
}

async function showPreviews() {
  const content = readContent();
  if (content === undefined) return;
  const answer = await post("/console/api/preview", { content });
  const error = document.getElementById("content-error");
  if (answer.status !== 200) {
    error.textContent = problemsText(answer.body);
    error.hidden = false;
    return;
  }
  document.getElementById("previews").innerHTML = answer.body.html;
}

async function send() {
  const content = readContent();
  if (content === undefined) return;
  const status = document.getElementById("send-status");
  const channel = document.getElementById("send-channel").value;
  const to = document.getElementById("send-to").value;
  // No channel: the recipient is a group conversation, where everyone present gets a copy.
  const wanted = channel ? { channel, to, content } : { conversation: to, content };
  const answer = await post("/console/api/send", wanted);
  if (answer.status !== 202) {
    status.textContent = problemsText(answer.body);
    return;
  }
  if (!channel) {
    status.textContent = `${answer.body.id}: ${answer.body.copies.length} copies queued`;
    return;
  }
  const id = answer.body.id;
  status.dataset.messageId = id;
  status.textContent = `${id}: ${answer.body.state}`;
  for (let i = 0; i < 120; i++) {
    await new Promise((done) => setTimeout(done, 1000));
    const seen = await fetch(`/console/api/messages/${id}`).then((r) => r.json());
    status.textContent = `${id}: ${seen.state}`;
    if (["delivered", "read", "failed"].includes(seen.state)) return;
  }
}

function composer() {
  const example = document.getElementById("example");
  if (!example) return;
  example.addEventListener("change", () => {
    const chosen = document.getElementById(`example-${example.value}`);
    document.getElementById("content").value = chosen.content.textContent.trim();
    showPreviews();
  });
  document.getElementById("preview-button").addEventListener("click", showPreviews);
  document.getElementById("send-button").addEventListener("click", send);
  showPreviews();
}

watchLive();
composer();
