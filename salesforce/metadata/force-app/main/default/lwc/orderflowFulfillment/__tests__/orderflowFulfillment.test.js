import { readFileSync } from 'fs';
import { join } from 'path';
import { createElement } from 'lwc';
import { getRecord } from 'lightning/uiRecordApi';
import { getRelatedListRecords } from 'lightning/uiRelatedListApi';
import { refreshApex } from '@salesforce/apex';
import OrderflowFulfillment from 'c/orderflowFulfillment';

jest.mock('@salesforce/apex', () => ({ refreshApex: jest.fn(() => Promise.resolve()) }), {
    virtual: true,
});

const ORDER_ID = '801000000000001AAA';
const CANVAS_CSS = join(__dirname, '../../../../../../../../daemon/web/canvas/static/canvas.css');
const OWN_CSS = join(__dirname, '../orderflowFulfillment.css');

// The picklists as salesforce/metadata deploys them: a value added there is tested here.
const OBJECTS = join(__dirname, '../../../objects');
function picklist(path) {
    const xml = readFileSync(join(OBJECTS, path), 'utf8');
    return [...xml.matchAll(/<value>\s*<fullName>([^<]+)<\/fullName>/g)].map((m) => m[1]);
}
const FULFILLMENT_STATUSES = picklist('Order/fields/Fulfillment_Status__c.field-meta.xml');
const STEP_STATES = picklist('Fulfillment_Task__c/fields/State__c.field-meta.xml');
const JEOPARDY = { 'On Track': 'jp-on-track', 'At Risk': 'jp-at-risk', Late: 'jp-late', Fallout: 'jp-fallout' };

test('the picklists are read', () => {
    expect(FULFILLMENT_STATUSES).toHaveLength(6);
    expect(STEP_STATES).toHaveLength(12);
    expect(picklist('Order/fields/Jeopardy_Status__c.field-meta.xml')).toEqual(Object.keys(JEOPARDY));
});

function uiRecord(apiName, id, values) {
    const fields = {};
    for (const [name, value] of Object.entries(values)) {
        fields[name] = { value, displayValue: null };
    }
    return { apiName, id, fields };
}

function order(values = {}) {
    return uiRecord('Order', ORDER_ID, {
        Fulfillment_Status__c: 'In Progress',
        Jeopardy_Status__c: 'On Track',
        Fulfillment_Progress__c: 40,
        Fulfillment_Updated__c: '2026-12-06T08:00:00.000Z',
        Fulfillment_Message__c: null,
        ...values,
    });
}

let next = 1;
function task(values) {
    const id = `a0B00000000000${String(next).padStart(2, '0')}AAA`;
    const name = `FT-${String(next).padStart(6, '0')}`;
    next += 1;
    return uiRecord('Fulfillment_Task__c', id, {
        Name: name,
        System__c: 'erp',
        Step__c: name,
        State__c: 'Pending',
        Sequence__c: null,
        Jeopardy__c: null,
        Due__c: null,
        Attempts__c: 0,
        Message__c: null,
        Planned_Start__c: null,
        Actual_Start__c: null,
        ...values,
    });
}

function plan(records, extra = {}) {
    return { records, count: records.length, nextPageToken: null, ...extra };
}

function mount(objectApiName = 'Order', recordId = ORDER_ID) {
    const element = createElement('c-orderflow-fulfillment', { is: OrderflowFulfillment });
    element.recordId = recordId;
    element.objectApiName = objectApiName;
    document.body.appendChild(element);
    return element;
}

const flush = () => Promise.resolve();
const $ = (element, selector) => element.shadowRoot.querySelector(selector);
const $$ = (element, selector) => [...element.shadowRoot.querySelectorAll(selector)];

// The CSS declarations of a rule whose selector list names `className`.
function rule(css, className) {
    const found = [...css.matchAll(/([^{}]+)\{([^}]*)\}/g)].find(([, selectors]) =>
        selectors.split(',').some((s) => s.trim() === `.${className}`),
    );
    if (!found) return null;
    return found[2].split(';').map((d) => d.trim().replace(/\s+/g, ' ')).filter(Boolean).sort();
}

afterEach(() => {
    while (document.body.firstChild) {
        document.body.removeChild(document.body.firstChild);
    }
    jest.clearAllMocks();
});

describe('the Order', () => {
    it.each(FULFILLMENT_STATUSES)('shows the fulfillment status %s in its colour', async (status) => {
        const element = mount();
        getRecord.emit(order({ Fulfillment_Status__c: status }));
        await flush();
        const pill = $(element, '[data-id="status"]');
        expect(pill.textContent).toBe(status);
        const className = `st-${status.toLowerCase().replace(' ', '-')}`;
        expect(pill.classList).toContain(className);
        expect(rule(readFileSync(OWN_CSS, 'utf8'), className)).not.toBeNull();
    });

    it.each(Object.entries(JEOPARDY))('colours jeopardy %s as the canvas does', async (jeopardy, className) => {
        const element = mount();
        getRecord.emit(order({ Jeopardy_Status__c: jeopardy }));
        await flush();
        const pill = $(element, '[data-id="jeopardy"]');
        expect(pill.textContent).toBe(jeopardy);
        expect(pill.classList).toContain(className);
        const own = rule(readFileSync(OWN_CSS, 'utf8'), className);
        expect(own).not.toBeNull();
        expect(own).toEqual(rule(readFileSync(CANVAS_CSS, 'utf8'), className));
    });

    it('shows no jeopardy once the order is done', async () => {
        const element = mount();
        getRecord.emit(order({ Fulfillment_Status__c: 'Completed', Jeopardy_Status__c: null }));
        await flush();
        expect($(element, '[data-id="jeopardy"]')).toBeNull();
    });

    it('shows progress, last update and message', async () => {
        const element = mount();
        const message = 'Provisioning: activate licenses is 2 h late (due 14:00 UTC)';
        getRecord.emit(order({ Fulfillment_Progress__c: 75, Fulfillment_Message__c: message }));
        await flush();
        expect($(element, '[data-id="progress"]').value).toBe(75);
        expect($(element, '[data-id="progress-label"]').textContent).toBe('75%');
        expect($(element, '[data-id="updated"]').value).toBe('2026-12-06T08:00:00.000Z');
        expect($(element, '[data-id="message"]').textContent).toBe(message);
    });

    it('says so when Orderflow has not picked the order up', async () => {
        const element = mount();
        getRecord.emit(order({ Fulfillment_Status__c: null, Jeopardy_Status__c: null }));
        await flush();
        expect($(element, '[data-id="not-picked-up"]')).not.toBeNull();
        expect($(element, '[data-id="status"]')).toBeNull();
    });

    it('shows what Salesforce refused to read', async () => {
        const element = mount();
        getRecord.error({ message: 'No such column Fulfillment_Status__c' });
        await flush();
        expect($(element, '[data-id="error"]').textContent).toContain('Fulfillment_Status__c');
    });

    it("reads the Order's fields and its Fulfillment Tasks related list", async () => {
        mount();
        getRecord.emit(order());
        await flush();
        expect(getRecord.getLastConfig().fields).toContain('Order.Fulfillment_Status__c');
        const config = getRelatedListRecords.getLastConfig();
        expect(config.parentRecordId).toBe(ORDER_ID);
        expect(config.relatedListId).toBe('Fulfillment_Tasks__r');
        expect(config.fields).toEqual(expect.arrayContaining(['Fulfillment_Task__c.State__c', 'Fulfillment_Task__c.Due__c']));
    });
});

describe('the plan', () => {
    async function shown(records, extra) {
        const element = mount();
        getRecord.emit(order());
        await flush();
        getRelatedListRecords.emit(plan(records, extra));
        await flush();
        return element;
    }

    it('says there are no steps for an empty plan', async () => {
        const element = await shown([]);
        expect($(element, '[data-id="empty"]')).not.toBeNull();
        expect($$(element, 'li.step')).toHaveLength(0);
    });

    it('shows nothing of a plan before it is read', async () => {
        const element = mount();
        getRecord.emit(order());
        await flush();
        expect($(element, '[data-id="empty"]')).toBeNull();
        expect($(element, '.plan-title')).toBeNull();
    });

    it.each(STEP_STATES)('shows a step %s in its colour', async (state) => {
        const element = await shown([task({ State__c: state })]);
        const pill = $(element, '[data-id="state"]');
        expect(pill.textContent).toBe(state);
        const className = `st-${state.toLowerCase().replace(' ', '-')}`;
        expect(pill.classList).toContain(className);
        expect(rule(readFileSync(OWN_CSS, 'utf8'), className)).not.toBeNull();
        expect($(element, '[data-id="empty"]')).toBeNull();
    });

    it.each(Object.entries(JEOPARDY))("colours a step's jeopardy %s", async (jeopardy, className) => {
        const element = await shown([task({ State__c: 'In Progress', Jeopardy__c: jeopardy })]);
        expect($(element, '[data-id="step-jeopardy"]').classList).toContain(className);
    });

    it('groups steps by system, each in dependency order, with due, attempts and message', async () => {
        const records = [
            task({ System__c: 'provisioning', Step__c: 'Activate licenses', State__c: 'In Progress',
                Actual_Start__c: '2026-12-06T08:05:00.000Z', Due__c: '2026-12-06T10:05:00.000Z',
                Attempts__c: 2, Message__c: 'timed out, retrying', Jeopardy__c: 'At Risk' }),
            task({ System__c: 'erp', Step__c: 'Confirm sales order', State__c: 'Pending' }),
            task({ System__c: 'erp', Step__c: 'Create sales order', State__c: 'Completed',
                Actual_Start__c: '2026-12-06T08:01:00.000Z' }),
            task({ System__c: null, Step__c: 'Kick-off call', State__c: 'Pending' }),
        ];
        const element = await shown(records);
        const systems = $$(element, 'section.system').map((s) => s.dataset.system);
        expect(systems).toEqual(['erp', 'provisioning', 'Orderflow']);
        const erp = $$(element, 'section[data-system="erp"] [data-id="title"]').map((a) => a.textContent);
        expect(erp).toEqual(['Create sales order', 'Confirm sales order']);
        const activate = $(element, `[data-step="${records[0].id}"]`);
        expect(activate.querySelector('[data-id="due"]').value).toBe('2026-12-06T10:05:00.000Z');
        expect(activate.querySelector('[data-id="attempts"]').textContent).toBe('attempts 2');
        expect(activate.querySelector('[data-id="step-message"]').textContent).toBe('timed out, retrying');
        expect(activate.querySelector('[data-id="title"]').getAttribute('href')).toBe(
            `/lightning/r/Fulfillment_Task__c/${records[0].id}/view`,
        );
        const pending = $(element, `[data-step="${records[1].id}"]`);
        expect(pending.querySelector('[data-id="attempts"]')).toBeNull();
        expect(pending.querySelector('[data-id="due"]')).toBeNull();
    });

    it('puts no step before a step it waits for, whatever order they were written in', async () => {
        const records = [
            task({ Step__c: 'Post invoice', Sequence__c: 3 }),
            task({ Step__c: 'Confirm sales order', Sequence__c: 2, Planned_Start__c: '2026-12-06T07:00:00.000Z' }),
            task({ Step__c: 'Create sales order', Sequence__c: 1, Actual_Start__c: '2026-12-06T08:00:00.000Z' }),
        ];
        const element = await shown(records);
        const titles = $$(element, '[data-id="title"]').map((a) => a.textContent);
        expect(titles).toEqual(['Create sales order', 'Confirm sales order', 'Post invoice']);
    });

    it('says when the plan is longer than the page it shows', async () => {
        const element = await shown([task({})], { count: 250, nextPageToken: 'page2' });
        expect($(element, '[data-id="more"]').textContent).toContain('1 of 250');
    });

    it('is read again when the record changes, not when it is the same', async () => {
        mount();
        getRecord.emit(order());
        await flush();
        getRelatedListRecords.emit(plan([task({})]));
        await flush();
        getRecord.emit(order());
        await flush();
        expect(refreshApex).not.toHaveBeenCalled();
        getRecord.emit(order({ Fulfillment_Updated__c: '2026-12-06T08:10:00.000Z' }));
        await flush();
        expect(refreshApex).toHaveBeenCalledTimes(1);
    });
});

describe('an order line', () => {
    it("shows the line's status and its order's plan", async () => {
        const element = mount('OrderItem', '802000000000001AAA');
        getRecord.emit(uiRecord('OrderItem', '802000000000001AAA', {
            Fulfillment_Status__c: 'Fallout',
            Jeopardy_Status__c: 'Late',
            OrderId: ORDER_ID,
        }));
        await flush();
        expect(getRecord.getLastConfig().fields).toContain('OrderItem.OrderId');
        expect(getRelatedListRecords.getLastConfig().parentRecordId).toBe(ORDER_ID);
        expect($(element, '[data-id="status"]').classList).toContain('st-fallout');
        expect($(element, '[data-id="jeopardy"]').classList).toContain('jp-late');
        getRelatedListRecords.emit(plan([task({ State__c: 'Fatally Failed' })]));
        await flush();
        expect($(element, '.plan-title').textContent).toBe("The order's plan");
        expect($(element, '[data-id="state"]').classList).toContain('st-fatally-failed');
    });
});
