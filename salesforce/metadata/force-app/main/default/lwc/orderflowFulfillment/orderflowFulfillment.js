// Orderflow's fulfillment on the Order (and OrderItem) record page: status, jeopardy,
// progress, last update and message, and the Order's Fulfillment_Task__c records as a plan.
// Lightning Data Service only (getRecord, getRelatedListRecords): no Apex, and the user
// sees exactly what their field-level security lets them (the Orderflow_Viewer set).
import { LightningElement, api, wire } from 'lwc';
import { getRecord } from 'lightning/uiRecordApi';
import { getRelatedListRecords } from 'lightning/uiRelatedListApi';
import { refreshApex } from '@salesforce/apex';
import { groupSteps, pillClass } from './plan';

const ORDER_FIELDS = [
    'Order.Fulfillment_Status__c',
    'Order.Jeopardy_Status__c',
    'Order.Fulfillment_Progress__c',
    'Order.Fulfillment_Updated__c',
    'Order.Fulfillment_Message__c',
];
const LINE_FIELDS = [
    'OrderItem.Fulfillment_Status__c',
    'OrderItem.Jeopardy_Status__c',
    'OrderItem.OrderId',
];
const TASK_FIELDS = [
    'Fulfillment_Task__c.Name',
    'Fulfillment_Task__c.System__c',
    'Fulfillment_Task__c.Step__c',
    'Fulfillment_Task__c.State__c',
    'Fulfillment_Task__c.Sequence__c',
    'Fulfillment_Task__c.Jeopardy__c',
    'Fulfillment_Task__c.Due__c',
    'Fulfillment_Task__c.Attempts__c',
    'Fulfillment_Task__c.Message__c',
    'Fulfillment_Task__c.Planned_Start__c',
    'Fulfillment_Task__c.Actual_Start__c',
];
// The relationship name of Fulfillment_Task__c.Order__c, as a related list.
export const RELATED_LIST = 'Fulfillment_Tasks__r';
export const PAGE_SIZE = 200;

function errorText(error) {
    const body = error && error.body;
    if (Array.isArray(body)) {
        return body.map((e) => e.message).join(', ');
    }
    return (body && body.message) || 'Fulfillment could not be read.';
}

export default class OrderflowFulfillment extends LightningElement {
    @api recordId;
    @api objectApiName;

    record;
    recordError;
    tasks;
    tasksError;
    tasksResult;
    lastSeen;

    get isLine() {
        return this.objectApiName === 'OrderItem';
    }

    get recordFields() {
        return this.isLine ? LINE_FIELDS : ORDER_FIELDS;
    }

    field(name) {
        const found = this.record && this.record.fields[name];
        return found === undefined || found === null ? null : found.value;
    }

    get orderId() {
        if (!this.record) return undefined;
        return this.isLine ? this.field('OrderId') : this.recordId;
    }

    get taskFields() {
        return TASK_FIELDS;
    }

    @wire(getRecord, { recordId: '$recordId', fields: '$recordFields' })
    wiredRecord({ data, error }) {
        if (data) {
            this.record = data;
            this.recordError = undefined;
            // The plan is read again whenever the record changes (Orderflow stamps the
            // Order's Fulfillment_Updated__c on every write).
            const seen = JSON.stringify(data.fields);
            if (this.lastSeen !== undefined && seen !== this.lastSeen && this.tasksResult) {
                refreshApex(this.tasksResult);
            }
            this.lastSeen = seen;
        } else if (error) {
            this.record = undefined;
            this.recordError = errorText(error);
        }
    }

    @wire(getRelatedListRecords, {
        parentRecordId: '$orderId',
        relatedListId: RELATED_LIST,
        fields: '$taskFields',
        pageSize: PAGE_SIZE,
    })
    wiredTasks(result) {
        this.tasksResult = result;
        if (result.data) {
            this.tasks = result.data;
            this.tasksError = undefined;
        } else if (result.error) {
            this.tasks = undefined;
            this.tasksError = errorText(result.error);
        }
    }

    get error() {
        return this.recordError || this.tasksError;
    }

    get status() {
        return this.field('Fulfillment_Status__c');
    }

    get notPickedUp() {
        return Boolean(this.record) && !this.status;
    }

    get statusClass() {
        return pillClass('st', this.status);
    }

    get jeopardy() {
        return this.field('Jeopardy_Status__c');
    }

    get jeopardyClass() {
        return pillClass('jp', this.jeopardy);
    }

    get progress() {
        return this.field('Fulfillment_Progress__c');
    }

    get hasProgress() {
        return this.progress !== null && this.progress !== undefined;
    }

    get updated() {
        return this.field('Fulfillment_Updated__c');
    }

    get message() {
        return this.field('Fulfillment_Message__c');
    }

    get groups() {
        return this.tasks ? groupSteps(this.tasks.records) : [];
    }

    get planLoaded() {
        return Boolean(this.tasks);
    }

    get hasSteps() {
        return this.groups.length > 0;
    }

    get planTitle() {
        return this.isLine ? "The order's plan" : 'Plan';
    }

    // The first page only: a plan longer than that is on the Fulfillment Tasks tab.
    get more() {
        return Boolean(this.tasks && this.tasks.nextPageToken);
    }

    get stepCount() {
        return this.tasks ? this.tasks.count : 0;
    }

    get shownCount() {
        return this.tasks ? this.tasks.records.length : 0;
    }
}
