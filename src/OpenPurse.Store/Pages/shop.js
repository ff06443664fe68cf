// The store's checkout (FIG. 12 to 20): choose an article, agree to the estimate, choose how to
// pay, see the signed bill, then hand the bill to the wallet agent, the local program that owns
// the card reader and asks for the person's approval in its own window. This page never reaches
// the card and never sees its data; it only follows the payment's state at the agent.
// No framework, no outside code; the page's content security policy allows no inline script,
// no eval, and connections only to this store and the agent.

import { agent, Refused, refusal, callAgent, isAgents, screens } from '/openpurse.js';

const pollInterval = 500;
const pollFailuresMax = 6;

// Minor digits of the currencies OpenPurse knows; another is shown with two.
const minorDigits = { EUR: 2, USD: 2, GBP: 2, CHF: 2, SEK: 2, JPY: 0, PTS: 0 };

const sections = ['fig-12', 'fig-13', 'fig-14', 'fig-15', 'fig-16', 'fig-17', 'fig-19', 'fig-20', 'error'];

const state = {
  catalog: null,
  request: null,
  order: null,
  payment: null,
  timer: 0,
  download: null,
};

const $ = (selector) => document.querySelector(selector);

const { show, current } = screens(sections);

/** An amount as people read it: "12.50 EUR" from {minorUnits, currency}. */
function money(amount) {
  const digits = minorDigits[amount.currency] ?? 2;
  const negative = amount.minorUnits < 0;
  const units = String(Math.abs(amount.minorUnits)).padStart(digits + 1, '0');
  const whole = digits === 0 ? units : units.slice(0, -digits);
  const text = digits === 0 ? whole : `${whole}.${units.slice(-digits)}`;
  return `${negative ? '-' : ''}${text} ${amount.currency}`;
}

/** Calls this store's API (same origin). */
async function store(method, path, body) {
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: body === undefined ? { Accept: 'application/json' } : { Accept: 'application/json', 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
    });
  } catch {
    throw new Refused('page.store_unreachable', 'The store does not answer. Check your connection and try again.');
  }
  if (!response.ok) {
    throw await refusal(response, 'page.store_refused');
  }
  return response.json();
}

function fail(error) {
  stopPolling();
  const refused = error instanceof Refused ? error : new Refused('page.error', String(error?.message ?? error));
  $('#error-text').textContent = refused.message;
  $('#error [data-code]').textContent = refused.code;
  show('error');
}

/** Runs an action of a button, which stays disabled until it is done. */
function onClick(selector, action) {
  const button = $(selector);
  button.addEventListener('click', async (event) => {
    event.preventDefault();
    if (button.disabled) {
      return;
    }
    button.disabled = true;
    try {
      await action(event);
    } catch (error) {
      fail(error);
    } finally {
      button.disabled = false;
    }
  });
}

// FIG. 12: the articles, of one store or of every member store of a mall.
async function loadCatalog() {
  const catalog = await store('GET', '/v1/catalog');
  state.catalog = catalog;
  const names = new Map(catalog.stores.map((s) => [s.storeId, s.name]));
  if (catalog.stores.length === 1) {
    $('#shop-name').textContent = `${catalog.stores[0].name}: shop with your OpenPurse card`;
    document.title = `${catalog.stores[0].name}: shop with your OpenPurse card`;
  } else if (catalog.mallId) {
    $('#shop-name').textContent = 'Shop the mall with your OpenPurse card';
  }
  const list = $('#articles');
  list.replaceChildren();
  catalog.items.forEach((item, index) => {
    const li = document.createElement('li');
    li.dataset.sku = item.sku;
    li.dataset.store = item.storeId;

    const about = document.createElement('div');
    const title = document.createElement('div');
    title.className = 'article-title';
    title.id = `article-${index}-title`;
    title.textContent = item.title;
    const from = document.createElement('div');
    from.className = 'article-store';
    from.textContent = names.get(item.storeId) ?? item.storeId;
    const price = document.createElement('div');
    price.className = 'article-price';
    price.textContent = money(item.price);
    about.append(title, from, price);

    const order = document.createElement('div');
    order.className = 'article-order';
    const label = document.createElement('label');
    label.htmlFor = `article-${index}-quantity`;
    label.textContent = 'Quantity';
    // Each field's name says which article it counts; the article's title is already in sight.
    const which = document.createElement('span');
    which.className = 'visually-hidden';
    which.textContent = ` of ${item.title}`;
    label.append(which);
    const quantity = document.createElement('input');
    quantity.type = 'number';
    quantity.name = 'quantity';
    quantity.id = `article-${index}-quantity`;
    quantity.min = '1';
    quantity.max = '99';
    quantity.step = '1';
    quantity.value = '1';
    quantity.inputMode = 'numeric';
    const choose = document.createElement('button');
    choose.type = 'button';
    choose.className = 'choose';
    choose.textContent = 'Choose';
    choose.setAttribute('aria-describedby', title.id);
    choose.addEventListener('click', async () => {
      choose.disabled = true;
      try {
        await estimate(item, quantity.value);
      } catch (error) {
        fail(error);
      } finally {
        choose.disabled = false;
      }
    });
    order.append(label, quantity, choose);

    li.append(about, order);
    list.append(li);
  });
  $('#catalog-loading').textContent = catalog.items.length === 0 ? 'Nothing is for sale here just now.' : '';
}

// FIG. 13: the estimate of the chosen article, priced by the store.
async function estimate(item, quantityText) {
  const quantity = Number(quantityText);
  if (!Number.isInteger(quantity) || quantity < 1 || quantity > 99) {
    throw new Refused('page.quantity_invalid', 'The quantity is a whole number from 1 to 99.');
  }
  const request = { storeId: item.storeId, items: [{ sku: item.sku, quantity }] };
  const answer = await store('POST', '/v1/estimates', request);
  state.request = request;
  const storeName = state.catalog.stores.find((s) => s.storeId === answer.storeId)?.name ?? answer.storeId;
  $('#estimate-store').textContent = storeName;
  const lines = $('#estimate-lines');
  lines.replaceChildren();
  for (const line of answer.lines) {
    const row = document.createElement('tr');
    const title = document.createElement('td');
    title.textContent = line.title;
    const count = document.createElement('td');
    count.textContent = String(line.quantity);
    const amount = document.createElement('td');
    amount.className = 'amount';
    amount.textContent = money(line.amount);
    row.append(title, count, amount);
    lines.append(row);
  }
  $('#estimate-total').textContent = money(answer.total);
  show('fig-13');
}

/** The payload of a compact JWS, for display only: the agent verifies the signature. */
function jwsPayload(compact) {
  const parts = compact.split('.');
  if (parts.length !== 3) {
    throw new Refused('page.bill_unreadable', 'The store sent a bill this page cannot read.');
  }
  const base64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
  const padded = base64 + '='.repeat((4 - (base64.length % 4)) % 4);
  const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

// FIG. 15: the order and its signed bill.
async function requestBill() {
  const order = await store('POST', '/v1/orders', state.request);
  let bill;
  try {
    bill = jwsPayload(order.bill);
  } catch (error) {
    throw error instanceof Refused ? error : new Refused('page.bill_unreadable', 'The store sent a bill this page cannot read.');
  }
  state.order = { orderNo: order.orderNo, bill: order.bill, amount: money(bill.amount) };
  $('#bill-order').textContent = bill.orderNo;
  $('#bill-amount').textContent = state.order.amount;
  show('fig-15');
}

// FIG. 16: the agent takes the bill; the person approves in the agent's window.
async function pay() {
  const profile = document.querySelector('input[name="method"]:checked')?.value ?? 'signed';
  const created = await callAgent('POST', '/v1/payments', { bill: state.order.bill, profile });
  state.payment = created;
  const approval = new URL(created.approvalUrl, agent);
  if (!isAgents(approval)) {
    throw new Refused('page.approval_elsewhere', 'The wallet agent named an approval page that is not its own.');
  }
  for (const link of [$('#open-approval'), $('#reopen-approval')]) {
    link.href = approval.href;
  }
  show('fig-16');
  startPolling();
}

function stopPolling() {
  clearTimeout(state.timer);
  state.timer = 0;
}

function startPolling() {
  stopPolling();
  let failures = 0;
  const paymentId = state.payment.paymentId;
  const poll = async () => {
    let payment;
    try {
      payment = await callAgent('GET', `/v1/payments/${encodeURIComponent(paymentId)}`);
      failures = 0;
    } catch (error) {
      if (error instanceof Refused && error.code === 'agent.unreachable' && ++failures < pollFailuresMax) {
        state.timer = setTimeout(poll, pollInterval);
        return;
      }
      fail(error);
      return;
    }
    if (state.payment?.paymentId !== paymentId) {
      return;
    }
    if (follow(payment)) {
      state.timer = setTimeout(poll, pollInterval);
    }
  };
  state.timer = setTimeout(poll, pollInterval);
}

const waitingTexts = {
  'reading-card': 'Reading your card… Keep it on the reader.',
  'awaiting-approval': 'Waiting for your approval in the wallet agent\'s window.',
};

/** Shows the payment's state; true while there is more to wait for. */
function follow(payment) {
  switch (payment.state) {
    case 'reading-card':
    case 'awaiting-approval':
      $('#waiting-text').textContent = waitingTexts[payment.state];
      // FIG. 16 stays until the person opens the approval window (or the payment moves on).
      if (current() !== 'fig-16' && current() !== 'fig-17') {
        show('fig-17');
      }
      return true;
    case 'paying':
      if (current() !== 'fig-19') {
        show('fig-19');
      }
      return true;
    case 'completed':
      complete(payment);
      return false;
    case 'declined':
      fail(new Refused(payment.error?.code ?? 'page.declined',
        payment.error?.detail ?? 'The payment was declined in the wallet agent, or its approval lapsed. Nothing was paid.'));
      return false;
    case 'failed': {
      const debited = payment.error?.cardDebited
        ? ' Your card was debited: keep this page\'s order number and ask the store.'
        : '';
      fail(new Refused(payment.error?.code ?? 'page.payment_failed',
        (payment.error?.detail ?? 'The payment failed.') + debited));
      return false;
    }
    default:
      fail(new Refused('page.state_unknown', `The wallet agent told a state this page does not know: ${String(payment.state)}.`));
      return false;
  }
}

// FIG. 20: paid; the goods as a download named after the order.
function complete(payment) {
  const result = payment.result ?? {};
  const orderNo = result.orderNo ?? payment.orderNo ?? state.order.orderNo;
  $('#receipt-order').textContent = orderNo;
  $('#receipt-amount').textContent = payment.amount ?? state.order.amount;
  if (state.download) {
    URL.revokeObjectURL(state.download);
  }
  state.download = URL.createObjectURL(new Blob([result.content ?? ''], { type: 'text/plain;charset=utf-8' }));
  const link = $('#download');
  link.href = state.download;
  link.download = `${orderNo.replace(/[^A-Za-z0-9._-]/g, '_')}.txt`;
  show('fig-20');
}

function startOver() {
  stopPolling();
  state.request = null;
  state.order = null;
  state.payment = null;
  show('fig-12');
  loadCatalog().catch(fail);
}

$('#back').addEventListener('click', () => show('fig-12'));
onClick('#agree-estimate', async () => show('fig-14'));
onClick('#request-bill', requestBill);
onClick('#pay', pay);
for (const link of [$('#open-approval'), $('#reopen-approval')]) {
  link.addEventListener('click', (event) => {
    if (!state.payment) {
      event.preventDefault();
      return;
    }
    // The link opens the agent's window itself (target=_blank, rel=noopener); this page then
    // waits, once the click has done its work.
    setTimeout(() => {
      if (current() === 'fig-16') {
        show('fig-17');
      }
    }, 0);
  });
}
$('#start-over').addEventListener('click', startOver);
$('#shop-again').addEventListener('click', startOver);

loadCatalog().catch(fail);
