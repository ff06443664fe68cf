// What the store's checkout and the operator's top-up pages share, written once: the wallet
// agent's address (from the page's meta tag), refusals with their stable codes, the calls to the
// agent, and the screens one of which shows at a time. An ES module served by each server beside
// its own script; no framework, no outside code.

/** The wallet agent's origin, as the server wrote it into the page. */
export const agent = document.querySelector('meta[name="openpurse-agent"]').content;

/** A refusal to show: the words and the stable code. */
export class Refused extends Error {
  constructor(code, detail) {
    super(detail);
    this.code = code;
  }
}

// An agent that refuses this page's origin answers without CORS headers, which the browser
// reports as no answer at all: the words name both causes.
export function unreachable() {
  return new Refused('agent.unreachable',
    `Your wallet agent does not answer at ${agent}, or does not let this page use it. Start it with \`openpurse agent\`, `
    + `allowing this page with \`--allow-origin ${location.origin}\`, then try again.`);
}

const loopbackHosts = new Set(['127.0.0.1', 'localhost', '[::1]']);

/**
 * Whether a URL the agent named is the agent's own: its origin, or (the agent names itself by
 * one loopback name, the page may know it by another) a loopback name with the same scheme and port.
 */
export function isAgents(url) {
  const own = new URL(agent);
  return url.origin === own.origin
    || (url.protocol === own.protocol && url.port === own.port && loopbackHosts.has(url.hostname) && loopbackHosts.has(own.hostname));
}

/** Reads a problem-details refusal (RFC 9457) from an answer. */
export async function refusal(response, fallbackCode) {
  let problem = null;
  try {
    problem = await response.json();
  } catch {
    // Not JSON: the status alone says what happened.
  }
  const code = typeof problem?.code === 'string' ? problem.code : fallbackCode;
  const detail = typeof problem?.detail === 'string' ? problem.detail
    : typeof problem?.title === 'string' ? problem.title
      : `The answer was ${response.status} ${response.statusText}.`;
  return new Refused(code, detail);
}

/** Calls the wallet agent; the header makes every call a CORS request the agent checks. */
export async function callAgent(method, path, body) {
  let response;
  try {
    response = await fetch(new URL(path, agent), {
      method,
      headers: body === undefined
        ? { 'X-OpenPurse-Agent': '1' }
        : { 'X-OpenPurse-Agent': '1', 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'omit',
      mode: 'cors',
      referrerPolicy: 'no-referrer',
    });
  } catch {
    throw unreachable();
  }
  if (!response.ok) {
    throw await refusal(response, 'page.agent_refused');
  }
  return response.json();
}

/**
 * The page's screens (sections by id): `show` shows one, hides the others and moves the focus to
 * its heading; `current` names the one showing.
 */
export function screens(sections) {
  return {
    show(id) {
      for (const other of sections) {
        document.getElementById(other).hidden = other !== id;
      }
      document.querySelector(`#${id} h2`).focus();
    },
    current() {
      return sections.find((id) => !document.getElementById(id).hidden);
    },
  };
}
