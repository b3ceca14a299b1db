// The plan as the component shows it, from the Fulfillment_Task__c records of an Order
// (UI API record shape: record.fields.Name.value). Pure: no wire, no DOM.

// The canvas's class names (daemon/web/canvas/static/canvas.css): "st-" or "jp-" and the value
// in lower case, words joined by "-" ("Fatally Failed" -> "st-fatally-failed").
export function cssName(prefix, value) {
    return `${prefix}-${String(value).toLowerCase().replace(/\s+/g, '-')}`;
}

export function pillClass(prefix, value) {
    return `pill ${cssName(prefix, value)}`;
}

function value(record, field) {
    const found = record.fields[field];
    return found === undefined ? null : found.value;
}

// Steps without a system are Orderflow's own (manual, milestone, pause, auto).
const OWN_STEPS = 'Orderflow';

// Plan order: by Sequence__c (Orderflow writes 1 for a step that waits for none, else one
// more than the latest step it waits for), so no step comes before one it waits for. Steps
// with the same number (or none: an older Orderflow) in order of start, planned start,
// then the order Orderflow created them in (the auto-number Name).
function when(step) {
    return step.actualStart || step.plannedStart || null;
}

function nullsLast(a, b) {
    if (a === b) return 0;
    if (a === null) return 1;
    if (b === null) return -1;
    return a < b ? -1 : 1;
}

function byPlanOrder(a, b) {
    return (
        nullsLast(a.sequence, b.sequence) ||
        nullsLast(when(a), when(b)) ||
        (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
    );
}

export function toStep(record) {
    const state = value(record, 'State__c') || 'Pending';
    const jeopardy = value(record, 'Jeopardy__c');
    const attempts = value(record, 'Attempts__c');
    return {
        id: record.id,
        url: `/lightning/r/Fulfillment_Task__c/${record.id}/view`,
        name: value(record, 'Name') || '',
        system: value(record, 'System__c') || OWN_STEPS,
        title: value(record, 'Step__c') || value(record, 'Name') || '',
        state,
        stateClass: pillClass('st', state),
        jeopardy,
        jeopardyClass: jeopardy ? pillClass('jp', jeopardy) : null,
        due: value(record, 'Due__c'),
        attempts: attempts || 0,
        hasAttempts: Boolean(attempts),
        message: value(record, 'Message__c'),
        sequence: value(record, 'Sequence__c'),
        plannedStart: value(record, 'Planned_Start__c'),
        actualStart: value(record, 'Actual_Start__c'),
    };
}

// Steps grouped by system, each group in plan order; groups in the order of their first
// step, so the system the plan starts with comes first.
export function groupSteps(records) {
    const steps = records.map(toStep).sort(byPlanOrder);
    const groups = new Map();
    for (const step of steps) {
        if (!groups.has(step.system)) {
            groups.set(step.system, { system: step.system, steps: [] });
        }
        groups.get(step.system).steps.push(step);
    }
    return [...groups.values()].map((group) => ({
        ...group,
        count: group.steps.length,
        done: group.steps.filter((s) => s.state === 'Completed').length,
    }));
}
