// The admin's "try it" box on an agent: one stateless /v1/infer run with the staff member's
// session (the CSRF token comes from Django's cookie), answer shown as plain text.
(function () {
  const button = document.getElementById("agent-try-run");
  if (!button) return;
  const output = document.getElementById("agent-try-output");
  const status = document.getElementById("agent-try-status");
  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }
  button.addEventListener("click", async function () {
    button.disabled = true;
    status.textContent = "running…";
    output.textContent = "";
    try {
      const response = await fetch(button.dataset.url, {
        method: "POST",
        credentials: "same-origin",
        headers: {"Content-Type": "application/json", "X-CSRFToken": csrfToken()},
        body: JSON.stringify({agent: button.dataset.agent, text: document.getElementById("agent-try-text").value}),
      });
      const body = await response.json();
      if (!response.ok) {
        status.textContent = "error " + response.status;
        output.textContent = body.error ? body.error.message : JSON.stringify(body);
        return;
      }
      status.textContent = body.finish_reason + " · " + body.tool_rounds + " tool round(s) · " + body.usage.total_tokens + " tokens";
      output.textContent = body.content;
    } catch (err) {
      status.textContent = "failed";
      output.textContent = String(err);
    } finally {
      button.disabled = false;
    }
  });
})();
