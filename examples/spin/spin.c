/* spin: an infinite loop the compiler cannot remove (used to test time limits). */
int main(void) {
    volatile unsigned long long counter = 0;
    for (;;) counter = counter + 1;
}
