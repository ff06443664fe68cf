// The operator's top-up pages (FIG. 25 to 32): from the top page, through "put your card on the
// reader" and the amount, to the wallet agent's own window (FIG. 29), where the card holder types
// the credit card and approves; then this page follows the top-up until the card holds the value.
// The wallet agent is the local program that owns the card reader. This page never sees the
// credit card's data nor the card's; it talks only to the agent (and the agent to this operator).
// No framework, no outside code; the content security policy allows no inline script, no eval.

import { agent, Refused, callAgent, isAgents, screens } from '/openpurse.js';

const pollInterval = 500;
const pollFailuresMax = 6;

// "EUR:2 …": the currencies this operator tops cards up in, each with its minor digits.
const currencies = document.querySelector('meta[name="openpurse-currencies"]').content
  .split(/\s+/)
  .filter((entry) => /^[A-Z]{3}:\d$/.test(entry))
  .map((entry) => ({ code: entry.slice(0, 3), digits: Number(entry.slice(4)) }));

const sections = ['fig-32', 'fig-25', 'fig-26', 'fig-27', 'fig-28', 'approval', 'fig-30', 'fig-31', 'error'];

const state = {
  timer: 0,
  topUp: null,
  round: 0,
};

const $ = (selector) => document.querySelector(selector);

const { show, current } = screens(sections);

function stopPolling() {
  clearTimeout(state.timer);
  state.timer = 0;
  // Any poll still in flight belongs to an earlier round and is ignored.
  state.round++;
}

function fail(error) {
  stopPolling();
  const refused = error instanceof Refused ? error : new Refused('page.error', String(error?.message ?? error));
  $('#error-text').textContent = refused.message;
  $('#error [data-code]').textContent = refused.code;
  show('error');
}

/**
 * Asks `ask` every half second until `next` says it is done
 * (returns false); a few missed answers in a row are tolerated, more end in the error section.
 */
function poll(ask, next) {
  stopPolling();
  const round = state.round;
  let failures = 0;
  const once = async () => {
    let answer;
    try {
      answer = await ask();
      failures = 0;
    } catch (error) {
      if (round !== state.round) {
        return;
      }
      if (error instanceof Refused && error.code === 'agent.unreachable' && ++failures < pollFailuresMax) {
        state.timer = setTimeout(once, pollInterval);
        return;
      }
      fail(error);
      return;
    }
    if (round === state.round && next(answer)) {
      state.timer = setTimeout(once, pollInterval);
    }
  };
  once();
}

// FIG. 26 and 27: wait for the card in the agent's reader.
function waitForCard() {
  show('fig-26');
  let seen = false;
  poll(() => callAgent('GET', '/v1/card'), (card) => {
    if (card.present !== true) {
      seen = false;
      $('#card-waiting-text').textContent = 'Waiting for your card… Put it on the reader.';
      if (current() !== 'fig-26') {
        show('fig-26');
      }
      return true;
    }
    if (!seen) {
      // FIG. 27: the card is there; one more answer confirms it stays on the reader.
      seen = true;
      show('fig-27');
      return true;
    }
    stopPolling();
    chooseAmount();
    return false;
  });
}

// FIG. 28: the amount, in a currency this operator tops cards up in.
function chooseAmount() {
  const select = $('#currency');
  if (select.options.length === 0) {
    for (const currency of currencies) {
      const option = document.createElement('option');
      option.value = currency.code;
      option.textContent = currency.code;
      option.dataset.digits = String(currency.digits);
      select.append(option);
    }
  }
  updateStep();
  show('fig-28');
}

function digitsOf(code) {
  return currencies.find((c) => c.code === code)?.digits ?? 2;
}

function updateStep() {
  const digits = digitsOf($('#currency').value);
  $('#amount').step = digits === 0 ? '1' : `0.${'0'.repeat(digits - 1)}1`;
}

/** "20" or "20.5" in EUR → "20.50 EUR"; null when it is not an amount above zero of that currency. */
function amountText(text, code) {
  const digits = digitsOf(code);
  const match = /^(\d{1,9})(?:\.(\d*))?$/.exec(text.trim());
  if (!match || (match[2] ?? '').length > digits) {
    return null;
  }
  const whole = match[1].replace(/^0+(?=\d)/, '');
  const fraction = (match[2] ?? '').padEnd(digits, '0');
  if (/^0+$/.test(whole + fraction)) {
    return null;
  }
  return digits === 0 ? `${whole} ${code}` : `${whole}.${fraction} ${code}`;
}

// FIG. 29 is the agent's window; this page links to it and follows the top-up (FIG. 30, 31).
async function requestTopUp() {
  const code = $('#currency').value;
  const amount = amountText($('#amount').value, code);
  if (amount === null) {
    throw new Refused('page.amount_invalid', `The amount is a number above zero with at most ${digitsOf(code)} decimal digits.`);
  }
  const created = await callAgent('POST', '/v1/topups', { amount });
  const approval = new URL(created.approvalUrl, agent);
  if (!isAgents(approval)) {
    throw new Refused('page.approval_elsewhere', 'The wallet agent named an approval page that is not its own.');
  }
  state.topUp = created;
  $('#open-approval').href = approval.href;
  $('#approval-amount').textContent = amount;
  $('#approval-waiting-text').textContent = 'Waiting for your credit card and approval in the wallet agent\'s window…';
  show('approval');
  followTopUp(created.topUpId);
}

function followTopUp(topUpId) {
  poll(() => callAgent('GET', `/v1/topups/${encodeURIComponent(topUpId)}`), (topUp) => {
    switch (topUp.state) {
      case 'awaiting-card-data':
        return true;
      case 'processing':
        if (current() !== 'fig-30') {
          show('fig-30');
        }
        return true;
      case 'completed': {
        const result = topUp.result ?? {};
        $('#topup-amount').textContent = result.amount ?? topUp.amount ?? '';
        $('#balance-after').textContent = result.balanceAfter ?? '';
        state.topUp = null;
        show('fig-31');
        return false;
      }
      case 'declined':
        fail(new Refused(topUp.error?.code ?? 'page.declined',
          topUp.error?.detail ?? 'The top-up was declined in the wallet agent, or its approval lapsed. Nothing was charged.'));
        return false;
      case 'failed':
        fail(new Refused(topUp.error?.code ?? 'page.topup_failed', topUp.error?.detail ?? 'The top-up failed.'));
        return false;
      default:
        fail(new Refused('page.state_unknown', `The wallet agent told a state this page does not know: ${String(topUp.state)}.`));
        return false;
    }
  });
}

function toTop() {
  stopPolling();
  state.topUp = null;
  $('#amount').value = '';
  show('fig-32');
}

$('#topup-max').textContent = document.querySelector('meta[name="openpurse-topup-max"]').content;
$('#start-topup').addEventListener('click', () => show('fig-25'));
$('#cancel-topup').addEventListener('click', toTop);
$('#pay-in').addEventListener('click', waitForCard);
$('#currency').addEventListener('change', updateStep);
$('#amount-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const button = $('#continue');
  if (button.disabled) {
    return;
  }
  button.disabled = true;
  try {
    await requestTopUp();
  } catch (error) {
    fail(error);
  } finally {
    button.disabled = false;
  }
});
$('#back-to-top').addEventListener('click', toTop);
$('#start-over').addEventListener('click', toTop);
